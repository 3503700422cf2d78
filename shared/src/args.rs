//! Command-line parsing shared by the three binaries.

/// Parses the command line; a usage error is printed as one line (plus a pointer to
/// `--help`) with exit status 2, help and version as clap prints them.
pub fn parse_args<T: clap::Parser>() -> Result<T, std::process::ExitCode> {
    use clap::error::ErrorKind;
    match T::try_parse() {
        Ok(args) => Ok(args),
        Err(err) => match err.kind() {
            ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => err.exit(),
            _ => {
                let rendered = err.render().to_string();
                let first = rendered
                    .lines()
                    .next()
                    .unwrap_or("error: invalid arguments");
                eprintln!("{first} (see --help)");
                Err(std::process::ExitCode::from(2))
            }
        },
    }
}
