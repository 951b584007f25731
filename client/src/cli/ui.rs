//! `orchestrate ui`: opens the web dashboard in the browser with a one-time login link (it
//! sets the browser's session cookie and stops working), or prints the link with
//! `--print-url` — for a browser on another session of this machine, or a headless one.

use clap::Args;
use orchestrator_proto::ui::UiLogin;

use crate::client::Client;
use crate::error::ClientError;

#[derive(Debug, Args)]
pub struct UiArgs {
    /// Open this run's page (an id from `orchestrate list`) instead of every run's
    #[arg(long, value_name = "ID")]
    run: Option<String>,
    /// Print the login link instead of opening a browser
    #[arg(long)]
    print_url: bool,
}

pub async fn run(client: &Client, a: UiArgs) -> Result<(), ClientError> {
    let login = client.ui_login(&UiLogin { run: a.run }).await?;
    if a.print_url {
        crate::outln!("{}", login.url);
        return Ok(());
    }
    match open::that_detached(&login.url) {
        Ok(()) => crate::outln!(
            "Opened the dashboard in your browser. If nothing shows, open this link within {}s \
             (it works once):\n  {}",
            login.expires_in_secs,
            login.url
        ),
        // The launcher's own error repeats the link and says little more (no display, no
        // browser configured): the link is what the user needs.
        Err(_) => crate::outln!(
            "No browser could be opened here. Open this link within {}s (it works once):\n  {}",
            login.expires_in_secs,
            login.url
        ),
    }
    Ok(())
}
