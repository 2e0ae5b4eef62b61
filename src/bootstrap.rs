//! `huying bootstrap-admin --username NAME [--name DISPLAY NAME]`: creates
//! the first system administrator directly in the configured database (the
//! same `HUYING_*` variables as the server), and prints its initial
//! password and TOTP secret once. Refused when an enabled system
//! administrator with a password exists: from then on, accounts are made
//! through `StaffAccountService`.

use anyhow::{Context, bail};

use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::security::SecretCipher;
use crate::service::staff_accounts::{IssuedCredentials, bootstrap_admin};

const USAGE: &str = "usage: huying bootstrap-admin --username NAME [--name DISPLAY_NAME]";

/// Runs the command line after `huying bootstrap-admin`.
pub async fn run(args: Vec<String>) -> anyhow::Result<()> {
    let (username, display_name) = parse_args(&args)?;
    let config = Config::from_env().context("Failed to read the configuration")?;
    let store = crate::store::connect(&config.database_url, 1).await?;
    let secrets = SecretCipher::new(&config.keys)?;

    let issued = bootstrap_admin(
        store.as_ref(),
        &secrets,
        SystemClock.now(),
        &username,
        &display_name,
    )
    .await
    .map_err(|error| anyhow::anyhow!("{error:#}"))?;
    print_credentials(&issued);
    Ok(())
}

fn parse_args(args: &[String]) -> anyhow::Result<(String, String)> {
    let (mut username, mut display_name) = (None, None);
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let value = args
            .next()
            .with_context(|| format!("{arg} needs a value\n{USAGE}"));
        match arg.as_str() {
            "--username" => username = Some(value?.clone()),
            "--name" => display_name = Some(value?.clone()),
            other => bail!("unknown argument {other:?}\n{USAGE}"),
        }
    }
    let username = username.with_context(|| format!("--username is required\n{USAGE}"))?;
    let display_name = display_name.unwrap_or_else(|| username.clone());
    Ok((username, display_name))
}

/// The secrets go to the operator's terminal only, never to a log.
fn print_credentials(issued: &IssuedCredentials) {
    println!(
        "First system administrator created (account {}).",
        issued.credential.account.id
    );
    println!("  username:          {}", issued.credential.username);
    println!("  initial password:  {}", issued.initial_password.expose());
    if let Some(totp) = &issued.totp {
        println!("  TOTP secret:       {}", totp.secret.to_base32());
        println!("  TOTP URI:          {}", totp.otpauth_uri);
    }
    println!(
        "Shown once and stored only as a hash and ciphertext: add the TOTP URI to an \
         authenticator app (as a QR code or by hand), sign in with the password and a code, \
         and change the password with StaffAccountService.ChangePassword."
    );
}
