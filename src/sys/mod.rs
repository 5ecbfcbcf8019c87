//! Safe wrappers over the few libc calls strata needs.
