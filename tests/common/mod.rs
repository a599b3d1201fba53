//! Helpers shared by the integration tests. Each test binary uses only some of them.
#![allow(dead_code)]

pub mod e2e;
pub mod fixture;
pub mod golden;
pub mod gpu;
