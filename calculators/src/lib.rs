//! Calculators.
