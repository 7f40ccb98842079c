//! Test helpers of the broker tests: the broker on loopback and signed contracts (here), and
//! the Confidential Space token issuer shared with the keybroker crate's cloud stand-ins.
#![allow(unreachable_pub)]
pub mod broker;
#[path = "../../../tests/support/google.rs"]
pub mod google;
