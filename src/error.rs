//! The one place that maps errors to the outside world: exit codes now, API
//! error bodies and log lines as those interfaces grow.

use thiserror::Error;

use crate::api::server::ApiSocketError;
use crate::app::SetupError;
use crate::config::ConfigError;
use crate::engine::EngineError;
use crate::sys::ns::NsError;

#[derive(Debug, Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Namespace(#[from] NsError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Setup(#[from] SetupError),
    #[error(transparent)]
    ApiSocket(#[from] ApiSocketError),
}

impl Error {
    /// slirp4netns exits 1 for every error; callers rely on the class only.
    pub fn exit_code(&self) -> i32 {
        1
    }
}
