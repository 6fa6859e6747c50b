"""Everything beyond the lessons, done once: options and errors, outputs, training helpers,
--jobs, and each lesson's extensions. The scripts import this package; it never imports a
script (a lesson's model or data function is passed in)."""
