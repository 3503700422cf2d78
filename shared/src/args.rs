//! Command-line parsing shared by the three binaries.

/// Parses the command line; a usage error is printed as one line (plus a pointer to
/// `--help`) with exit status 2, help and version as clap prints them. The line keeps
/// everything clap says before its usage (so a missing argument is named).
pub fn parse_args<T: clap::Parser>() -> Result<T, std::process::ExitCode> {
    use clap::error::ErrorKind;
    match T::try_parse() {
        Ok(args) => Ok(args),
        Err(err) => match err.kind() {
            ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => err.exit(),
            _ => {
                eprintln!("{} (see --help)", one_line(&err.render().to_string()));
                Err(std::process::ExitCode::from(2))
            }
        },
    }
}

/// clap's message without its usage and `--help` lines, on one line.
fn one_line(rendered: &str) -> String {
    let said: Vec<&str> = rendered
        .lines()
        .take_while(|line| !line.starts_with("Usage:") && !line.starts_with("For more information"))
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect();
    if said.is_empty() {
        "error: invalid arguments".to_owned()
    } else {
        said.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::one_line;

    #[test]
    fn a_missing_argument_is_named_on_the_one_line() {
        let rendered = "error: the following required arguments were not provided:\n  --name <NAME>\n  --redirect-uri <URI>\n\nUsage: doorward apps create --name <NAME> --redirect-uri <URI>\n\nFor more information, try '--help'.\n";
        assert_eq!(
            one_line(rendered),
            "error: the following required arguments were not provided: --name <NAME> --redirect-uri <URI>"
        );
        assert_eq!(
            one_line("error: unexpected argument '--x' found\n\nUsage: doorward\n"),
            "error: unexpected argument '--x' found"
        );
        assert_eq!(one_line(""), "error: invalid arguments");
    }
}
