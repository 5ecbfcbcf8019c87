//! `strata completions SHELL` and `strata man`: generated from the clap definitions,
//! so that they always name the options the parser accepts.

use clap::{Args, ValueEnum};
use clap_complete::Shell;
use std::io::Write;

#[derive(Args, Debug)]
pub struct CompletionsArgs {
    /// The shell to complete for
    #[arg(value_enum)]
    pub shell: CompletionShell,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum CompletionShell {
    Bash,
    Zsh,
    Fish,
}

pub fn completions_main(args: CompletionsArgs) -> i32 {
    let shell = match args.shell {
        CompletionShell::Bash => Shell::Bash,
        CompletionShell::Zsh => Shell::Zsh,
        CompletionShell::Fish => Shell::Fish,
    };
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut super::command(), "strata", &mut out);
    write_stdout("strata completions", &out)
}

pub fn man_main() -> i32 {
    match man_page() {
        Ok(page) => write_stdout("strata man", &page),
        Err(e) => {
            eprintln!("strata man: rendering the manual page: {e}");
            1
        }
    }
}

fn write_stdout(prog: &str, bytes: &[u8]) -> i32 {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(bytes).and_then(|()| stdout.flush()) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("{prog}: writing to stdout: {e}");
            1
        }
    }
}

/// strata(1): the top-level page, then a section for each subcommand with its
/// synopsis, description, options and closing notes (for `strata mount`, the list
/// of `-o` options).
pub fn man_page() -> std::io::Result<Vec<u8>> {
    let mut cmd = super::command().disable_help_subcommand(true);
    cmd.build();
    let mut page = Vec::new();
    let top = clap_mangen::Man::new(cmd.clone());
    top.render_title(&mut page)?;
    top.render_name_section(&mut page)?;
    top.render_synopsis_section(&mut page)?;
    top.render_description_section(&mut page)?;
    top.render_options_section(&mut page)?;
    // The subcommands are described below, not in pages of their own.
    let mut subs = Vec::new();
    top.render_subcommands_section(&mut subs)?;
    let mut subs = String::from_utf8_lossy(&subs).into_owned();
    for sub in cmd.get_subcommands() {
        let name = sub.get_name();
        subs = subs.replace(&format!("strata\\-{name}(1)"), &format!("strata {name}"));
    }
    page.extend_from_slice(subs.as_bytes());
    if let Some(forms) = cmd.get_after_help() {
        writeln!(page, ".SH \"OTHER FORMS, MOUNT(8) AND FSTAB\"")?;
        literal(&mut page, &forms.to_string())?;
    }
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = sub.get_bin_name().unwrap_or(sub.get_name()).to_string();
        writeln!(page, ".SH \"{}\"", name.to_uppercase())?;
        let man = clap_mangen::Man::new(sub.clone());
        let mut part = Vec::new();
        man.render_synopsis_section(&mut part)?;
        man.render_description_section(&mut part)?;
        if sub.get_arguments().any(|a| !a.is_hide_set()) {
            man.render_options_section(&mut part)?;
        }
        // The subcommand's sections become subsections of its own.
        let part = String::from_utf8_lossy(&part).replace(".SH ", ".SS ");
        page.extend_from_slice(part.as_bytes());
        if let Some(notes) = sub.get_after_long_help().or(sub.get_after_help()) {
            // A table laid out with spaces (the -o options): kept as it is.
            writeln!(page, ".SS NOTES")?;
            literal(&mut page, &notes.to_string())?;
        }
    }
    top.render_version_section(&mut page)?;
    Ok(page)
}

/// `text` without filling: tables laid out with spaces stay as they are.
fn literal(page: &mut Vec<u8>, text: &str) -> std::io::Result<()> {
    writeln!(page, ".nf")?;
    for line in text.lines() {
        writeln!(page, "{}", roff_line(line))?;
    }
    writeln!(page, ".fi")
}

/// `line` as literal roff text.
fn roff_line(line: &str) -> String {
    let text = line.replace('\\', "\\e").replace('-', "\\-");
    if text.starts_with('.') || text.starts_with('\'') {
        format!("\\&{text}")
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn man_page_names_every_option_of_every_subcommand() {
        let page = String::from_utf8(super::man_page().expect("renders")).expect("utf-8");
        let cmd = crate::cli::command();
        for sub in cmd.get_subcommands() {
            assert!(
                page.contains(&format!("strata {}", sub.get_name())),
                "{}",
                sub.get_name()
            );
            for arg in sub.get_arguments().filter(|a| !a.is_hide_set()) {
                if let Some(long) = arg.get_long() {
                    // roff escapes the dashes of option names
                    assert!(
                        page.contains(&format!("\\-\\-{}", long.replace('-', "\\-"))),
                        "--{long}"
                    );
                }
            }
        }
        for opt in [
            "lowerdir=",
            "upperdir=",
            "workdir=",
            "redirect_dir=",
            "metacopy=",
        ] {
            assert!(page.contains(opt), "{opt}");
        }
    }
}
