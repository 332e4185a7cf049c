//! Benchmarks run through `hms bench`.

#[derive(Debug, clap::Subcommand)]
pub enum BenchCmd {}

pub async fn run(cmd: BenchCmd) -> anyhow::Result<()> {
    match cmd {}
}
