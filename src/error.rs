//! The one place that maps errors to the outside world: every module's error
//! converts into [`enum@Error`], whose `Display` is the one line `main` prints
//! after "rlnet: ", and [`Error::exit_code`] the status it exits with.

use thiserror::Error;

use crate::api::ReplyError;
use crate::api::client::ClientError;
use crate::api::server::ApiSocketError;
use crate::app::SetupError;
use crate::app::pasta::PastaSetupError;
use crate::config::ConfigError;
use crate::engine::EngineError;
use crate::network::daemon::NetworkError;
use crate::sys::ns::NsError;

#[derive(Debug, Error)]
pub enum Error {
    /// A command line rlnet cannot run: the parser's one line, verbatim
    /// (slirp4netns's texts where callers grep them).
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Namespace(#[from] NsError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Setup(#[from] SetupError),
    /// rlnet as pasta: the host's template, the daemon's start.
    #[error(transparent)]
    Pasta(#[from] PastaSetupError),
    #[error(transparent)]
    ApiSocket(#[from] ApiSocketError),
    /// `rlnet network|attach|detach` and `rlnet run --network`.
    #[error(transparent)]
    Network(#[from] NetworkError),
    /// `rlnet port`: the API socket did not answer as asked.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// `rlnet port`: an answer of the wrong shape.
    #[error(transparent)]
    Reply(#[from] ReplyError),
}

impl Error {
    /// slirp4netns exits 1 for every error; callers rely on the class only.
    pub fn exit_code(&self) -> i32 {
        1
    }
}
