//! The Stratum V1 proxy between the site's miners and the pools (issue 5 §4).
//!
//! Miners connect over **plain TCP**: ASIC firmware speaks Stratum V1 without TLS and cannot do
//! mutual TLS, so this is the one listener of the appliance that is not mutual TLS. It is made
//! safe otherwise: it binds only the configured mining-network address (`ProxySettings::listen`)
//! and admits only source addresses the inventory knows (`MinerDirectory::admit`); anything
//! else is closed before a byte is read.
//!
//! Per owner the proxy keeps few upstream connections to the owner's sanctioned pools, each
//! carrying many miners through extranonce partitioning (`extranonce`), and fails over between
//! them in priority order and back (`failover`, `owner_pools`, `upstream`). Each miner session
//! (`miner_session`) validates every share with `stratum::Session` before anything else,
//! forwards only shares that meet the pool's target, steers the miner's difficulty
//! (`vardiff`), and acknowledges a share only once its accounting row is committed
//! (`accounting`). `view` is what the operator and the crypto-jacking detector read.

pub mod accounting;
pub mod directory;
pub mod extranonce;
pub mod failover;
pub mod miner_session;
pub mod owner_pools;
pub mod pool_handshake;
pub mod server;
pub mod settings;
pub mod upstream;
pub mod vardiff;
pub mod view;

pub use accounting::{Accounting, AccountingError, Outcome, ShareCounts, ShareRecord};
pub use directory::{Admission, MinerDirectory, SanctionedPool};
pub use extranonce::{ExtranoncePartition, PartitionError};
pub use failover::{PoolFailover, PoolHealth};
pub use owner_pools::UpstreamView;
pub use server::Proxy;
pub use settings::{FailoverSettings, ProxySettings, VardiffSettings};
pub use vardiff::Vardiff;
pub use view::MinerView;
