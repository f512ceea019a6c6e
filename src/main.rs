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

    // The command runs on a thread of its own with a roomy stack: a debug build polls deeply nested futures whose
    // frames came within 0.5 MiB of the main thread's 8 MiB (measured: `up --dry-run` overflowed at 7 MiB). Worker
    // threads get the same room.
    const STACK: usize = 32 << 20;
    let command = std::thread::Builder::new()
        .name("vpclink".into())
        .stack_size(STACK)
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .thread_stack_size(STACK)
                .build()
                .expect("tokio runtime");
            match runtime.block_on(Box::pin(vpclink::commands::run(cli))) {
                Ok(()) => 0,
                Err(e) => {
                    if !matches!(e, vpclink::Error::ChecksFailed { .. })
                        || !e.to_string().is_empty()
                    {
                        eprintln!("vpclink: {e}");
                    }
                    e.exit_code()
                }
            }
        })
        .expect("spawn the command thread");
    // A panic was reported on stderr by the panic hook; it is a failure at run time.
    let code = command.join().unwrap_or(vpclink::error::EXIT_RUNTIME);
    std::process::exit(code);
}
