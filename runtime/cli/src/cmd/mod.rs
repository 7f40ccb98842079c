//! One module per `ccr` subcommand: its clap types, then its handler.

pub(crate) mod contract;
pub(crate) mod dataset;
pub(crate) mod dp;
pub(crate) mod image;
pub(crate) mod keybroker;
pub(crate) mod keys;
pub(crate) mod measure;
pub(crate) mod model;
pub(crate) mod policy;
pub(crate) mod scenario;
pub(crate) mod sim;
pub(crate) mod verify;
