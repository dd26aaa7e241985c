#![no_std]
//! TODO
