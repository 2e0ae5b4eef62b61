//! `huying admin …`: a small staff client for the terminal. It speaks gRPC
//! to a running server like any other client, signing in through the
//! development provider (or using `HUYING_TOKEN`), so it shows exactly what
//! the API allows.

use anyhow::{Context, bail};
use tonic::Request;
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;

use crate::proto::v1 as pb;
use crate::proto::v1::auth_service_client::AuthServiceClient;
use crate::proto::v1::case_service_client::CaseServiceClient;
use crate::proto::v1::directory_service_client::DirectoryServiceClient;

const USAGE: &str = "\
usage: huying admin [--server URL] [--as ROLE] [--unit UNIT] [--name NAME] COMMAND

identity (development sign-in; or set HUYING_TOKEN to an access token):
  --as ROLE      dispatcher (default), handler, unit_supervisor, district_supervisor, auditor, system_admin
  --unit UNIT    the staff member's unit (default: centre)
  --server URL   default http://127.0.0.1:50051 (or HUYING_SERVER)

commands:
  queue [--overdue] [--due-within HOURS]    the unit's cases, by deadline
  show CASE                                 one case with its units
  events CASE                               its whole timeline, internal events included
  accept CASE                               accept for filing (立案)
  reject CASE REASON
  answer CASE ANSWER                        answer a consultation and close it
  dispatch CASE LEAD [CO_UNIT...]           dispatch; co-units for parallel dispatch
  return CASE REASON                        send back as outside the unit's remit (退单)
  report CASE SUMMARY                       a co-unit reports its part
  note CASE TEXT [--public]                 a progress note (internal unless --public)
  resolve CASE SUMMARY
  merge CASE INTO_CASE                      merge a duplicate into another case
  follow-up CASE OUTCOME                    record a telephone follow-up
  units                                     the directory";

struct Options {
    server: String,
    role: pb::Role,
    unit: String,
    name: String,
}

/// Runs the command line after `huying admin`.
pub async fn run(args: Vec<String>) -> anyhow::Result<()> {
    let (options, command) = parse_options(args)?;
    if command.is_empty() || command[0] == "help" || command[0] == "--help" {
        println!("{USAGE}");
        return Ok(());
    }

    let channel = Channel::from_shared(options.server.clone())
        .context("Bad --server URL")?
        .connect()
        .await
        .with_context(|| format!("Failed to connect to {}", options.server))?;
    let token = match std::env::var("HUYING_TOKEN") {
        Ok(token) if !token.is_empty() => token,
        _ => sign_in(&channel, &options).await?,
    };
    let bearer = BearerToken(format!("Bearer {token}").parse().context("Bad token")?);
    let mut cases = CaseServiceClient::with_interceptor(channel.clone(), bearer.clone());
    let mut directory = DirectoryServiceClient::with_interceptor(channel, bearer);

    let arg = |i: usize, what: &str| -> anyhow::Result<String> {
        command
            .get(i)
            .cloned()
            .with_context(|| format!("missing {what}\n\n{USAGE}"))
    };
    let rest = |from: usize| command.get(from..).unwrap_or_default().join(" ");

    match command[0].as_str() {
        "queue" => {
            let overdue_only = command.iter().any(|a| a == "--overdue");
            let due_within_hours = flag_value(&command, "--due-within")?.unwrap_or(0);
            let queue = cases
                .list_queue(pb::ListQueueRequest {
                    page_size: 100,
                    overdue_only,
                    due_within_hours,
                    ..Default::default()
                })
                .await?
                .into_inner();
            for case in &queue.cases {
                println!("{}", case_line(case));
            }
            if queue.cases.is_empty() {
                println!("(no cases)");
            }
        }
        "show" => {
            let case = get(&mut cases, &arg(1, "CASE")?).await?;
            print_case(&case);
        }
        "events" => {
            let events = cases
                .list_case_events(pb::ListCaseEventsRequest {
                    complaint_id: arg(1, "CASE")?,
                    after_sequence: 0,
                })
                .await?
                .into_inner()
                .events;
            for event in events {
                let inner = event.event.unwrap_or_default();
                let shown = if event.visible_to_citizen {
                    "citizen"
                } else {
                    "internal"
                };
                println!(
                    "#{:<3} {:<22} {:<9} {:<24} {}",
                    inner.sequence,
                    inner.kind().as_str_name().trim_start_matches("EVENT_KIND_"),
                    shown,
                    event.unit_id,
                    inner.message
                );
            }
        }
        "units" => {
            let units = directory
                .list_units(pb::ListUnitsRequest {})
                .await?
                .into_inner()
                .units;
            for unit in units {
                println!("{:<28} {:<10} {}", unit.id, unit.parent_id, unit.name_zh);
            }
        }
        action => {
            let id = arg(1, "CASE")?;
            let case = get(&mut cases, &id).await?;
            let (request_id, version) = (new_request_id(), case.version);
            let result = match action {
                "accept" => {
                    let r = pb::AcceptForFilingRequest {
                        request_id,
                        complaint_id: id,
                        expected_version: version,
                    };
                    cases.accept_for_filing(r).await
                }
                "reject" => {
                    let r = pb::RejectComplaintRequest {
                        request_id,
                        complaint_id: id,
                        expected_version: version,
                        reason: rest(2),
                    };
                    cases.reject_complaint(r).await
                }
                "answer" => {
                    let r = pb::AnswerConsultationRequest {
                        request_id,
                        complaint_id: id,
                        expected_version: version,
                        answer: rest(2),
                    };
                    cases.answer_consultation(r).await
                }
                "dispatch" => {
                    let r = pb::DispatchCaseRequest {
                        request_id,
                        complaint_id: id,
                        expected_version: version,
                        lead_unit_id: arg(2, "LEAD")?,
                        co_unit_ids: command.get(3..).unwrap_or_default().to_vec(),
                    };
                    cases.dispatch_case(r).await
                }
                "return" => {
                    let r = pb::ReturnCaseRequest {
                        request_id,
                        complaint_id: id,
                        expected_version: version,
                        reason: rest(2),
                    };
                    cases.return_case(r).await
                }
                "report" => {
                    let r = pb::ReportPartRequest {
                        request_id,
                        complaint_id: id,
                        expected_version: version,
                        summary: rest(2),
                    };
                    cases.report_part(r).await
                }
                "note" => {
                    let public = command.iter().any(|a| a == "--public");
                    let note = command[2..]
                        .iter()
                        .filter(|a| *a != "--public")
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(" ");
                    let r = pb::AddProgressNoteRequest {
                        request_id,
                        complaint_id: id,
                        expected_version: version,
                        note,
                        visible_to_citizen: public,
                    };
                    cases.add_progress_note(r).await
                }
                "resolve" => {
                    let r = pb::ResolveCaseRequest {
                        request_id,
                        complaint_id: id,
                        expected_version: version,
                        summary: rest(2),
                    };
                    cases.resolve_case(r).await
                }
                "merge" => {
                    let r = pb::MergeCaseRequest {
                        request_id,
                        complaint_id: id,
                        expected_version: version,
                        into_complaint_id: arg(2, "INTO_CASE")?,
                    };
                    cases.merge_case(r).await
                }
                "follow-up" => {
                    let r = pb::RecordFollowUpRequest {
                        request_id,
                        complaint_id: id,
                        expected_version: version,
                        outcome: rest(2),
                    };
                    cases.record_follow_up(r).await
                }
                other => bail!("unknown command {other:?}\n\n{USAGE}"),
            };
            let case = result
                .map_err(|status| anyhow::anyhow!("{:?}: {}", status.code(), status.message()))?;
            println!("{}", case_line(case.get_ref()));
        }
    }
    Ok(())
}

fn parse_options(args: Vec<String>) -> anyhow::Result<(Options, Vec<String>)> {
    let mut options = Options {
        server: std::env::var("HUYING_SERVER")
            .unwrap_or_else(|_| "http://127.0.0.1:50051".to_owned()),
        role: pb::Role::Dispatcher,
        unit: "centre".to_owned(),
        name: String::new(),
    };
    let mut args = args.into_iter().peekable();
    while let Some(flag) = args.peek().filter(|a| a.starts_with("--")).cloned() {
        args.next();
        let value = args
            .next()
            .with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--server" => options.server = value,
            "--unit" => options.unit = value,
            "--name" => options.name = value,
            "--as" => {
                let name = format!("ROLE_{}", value.to_ascii_uppercase());
                options.role = pb::Role::from_str_name(&name)
                    .with_context(|| format!("unknown role {value}"))?;
            }
            other => bail!("unknown option {other}\n\n{USAGE}"),
        }
    }
    if options.name.is_empty() {
        options.name = format!(
            "{}@{}",
            options
                .role
                .as_str_name()
                .trim_start_matches("ROLE_")
                .to_lowercase(),
            options.unit
        );
    }
    Ok((options, args.collect()))
}

fn flag_value(command: &[String], flag: &str) -> anyhow::Result<Option<u32>> {
    let Some(at) = command.iter().position(|a| a == flag) else {
        return Ok(None);
    };
    let value = command
        .get(at + 1)
        .with_context(|| format!("{flag} needs a number"))?;
    Ok(Some(
        value
            .parse()
            .with_context(|| format!("{flag} needs a number"))?,
    ))
}

// TODO(cli): every command signs in afresh, so more than `signin.account`
// allows (10 in 15 minutes by default) under one name is refused; keeping
// the access token between commands until it expires would avoid that.
async fn sign_in(channel: &Channel, options: &Options) -> anyhow::Result<String> {
    let response = AuthServiceClient::new(channel.clone())
        .sign_in(pb::SignInRequest {
            credential: Some(pb::sign_in_request::Credential::Dev(pb::DevCredential {
                subject: options.name.clone(),
                role: options.role.into(),
                unit_id: options.unit.clone(),
                display_name: options.name.clone(),
            })),
        })
        .await
        .map_err(|status| anyhow::anyhow!("sign-in refused: {}", status.message()))?;
    response
        .into_inner()
        .session
        .map(|s| s.access_token)
        .context("the sign-in answer carried no session")
}

/// Adds the access token to every call.
#[derive(Clone)]
struct BearerToken(MetadataValue<tonic::metadata::Ascii>);

impl tonic::service::Interceptor for BearerToken {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, tonic::Status> {
        request
            .metadata_mut()
            .insert("authorization", self.0.clone());
        Ok(request)
    }
}

type Cases =
    CaseServiceClient<tonic::service::interceptor::InterceptedService<Channel, BearerToken>>;

async fn get(cases: &mut Cases, id: &str) -> anyhow::Result<pb::Case> {
    let case = cases
        .get_case(pb::GetCaseRequest {
            complaint_id: id.to_owned(),
        })
        .await
        .map_err(|status| anyhow::anyhow!("{:?}: {}", status.code(), status.message()))?;
    Ok(case.into_inner())
}

fn case_line(case: &pb::Case) -> String {
    let complaint = case.complaint.clone().unwrap_or_default();
    let deadline = complaint
        .deadline
        .and_then(|t| chrono::DateTime::from_timestamp(t.seconds, 0))
        .map(crate::domain::case::local_time)
        .unwrap_or_else(|| "-".to_owned());
    let flags = format!(
        "{}{}",
        if case.overdue { " OVERDUE" } else { "" },
        if case.probable_duplicate_of.is_empty() {
            String::new()
        } else {
            format!(" duplicate-of:{}", case.probable_duplicate_of)
        }
    );
    format!(
        "{:<5} {} {:<12} due {} lead {:<24} v{}{}  {}",
        complaint.id,
        complaint.tracking_number,
        complaint
            .status()
            .as_str_name()
            .trim_start_matches("COMPLAINT_STATUS_")
            .to_lowercase(),
        deadline,
        if case.lead_unit_id.is_empty() {
            "-"
        } else {
            &case.lead_unit_id
        },
        case.version,
        flags,
        complaint.text.chars().take(24).collect::<String>()
    )
}

fn print_case(case: &pb::Case) {
    println!("{}", case_line(case));
    for assignment in &case.assignments {
        let role = if assignment.lead { "lead" } else { "co" };
        let status = assignment
            .status()
            .as_str_name()
            .trim_start_matches("ASSIGNMENT_STATUS_")
            .to_lowercase();
        println!(
            "      {role:<4} {:<24} {status} {}",
            assignment.unit_id, assignment.note
        );
    }
}

fn new_request_id() -> String {
    let mut bytes = [0u8; 12];
    rand::fill(&mut bytes);
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("cli-{hex}")
}
