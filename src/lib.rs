//! mediagraph facade.
