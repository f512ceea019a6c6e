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

    // The VPCLINK_* settings, parsed once, before anything is done: a bad value is bad input (exit 2).
    if let Err(e) = vpclink::settings::init() {
        let e = vpclink::Error::from(e);
        eprintln!("vpclink: {e}");
        std::process::exit(e.exit_code());
    }

    // Worker threads get the main thread's stack size: the debug build's larger futures must never overflow 2 MiB.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(8 << 20)
        .build()
        .expect("tokio runtime");
    // The command's future lives on the heap, not on the main thread's stack.
    let code = match runtime.block_on(Box::pin(vpclink::run::run(cli))) {
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
