//! Going to the background, the auto-unmount watchdog, and signals.
