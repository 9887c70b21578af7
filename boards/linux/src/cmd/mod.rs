//! One module per subcommand.

pub mod bench;
pub mod chat;
pub mod convert;
pub mod inspect;
pub mod perplexity;
pub mod plan;
pub mod repack;
pub mod run;
pub mod tokenize;
pub mod verify;
