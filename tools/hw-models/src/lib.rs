//! Host models of the flash hardware.
