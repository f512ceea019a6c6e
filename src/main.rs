use clap::Parser;
use vpclink::cli::Cli;

fn main() {
    let cli = Cli::parse();
    let filter = match cli.verbose {
        0 => "warn",
        1 => "vpclink=info",
        _ => "vpclink=debug",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("VPCLINK_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(filter)),
        )
        .with_writer(std::io::stderr)
        .init();

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let code = match runtime.block_on(vpclink::run::run(cli)) {
        Ok(()) => 0,
        Err(e) => {
            if !matches!(e, vpclink::Error::ChecksFailed { .. }) || !e.to_string().is_empty() {
                eprintln!("vpclink: {e}");
            }
            e.exit_code()
        }
    };
    std::process::exit(code);
}
