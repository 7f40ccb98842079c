//! Test servers shared by the keybroker tests.
#![allow(unreachable_pub)]
pub mod azure;
pub mod gcp;
pub mod google;
pub mod launcher;
pub mod tls_server;
