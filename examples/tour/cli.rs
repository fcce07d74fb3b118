//! Command-line arguments of the tour and of its services.
//!
//! One binary plays every part: without `--role` it is the orchestrator (the tour itself, or
//! `--serve`); with `--role` it is one of the three services, started by the orchestrator.

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;

/// Which service a child process plays.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// The HTTP front door (axum): `GET /orders/{id}`, `POST /orders`, `GET /slow`, `GET /fail`.
    Gateway,
    /// The gRPC orders service (tonic): `shop.Orders/GetOrder`, `shop.Orders/PlaceOrder`.
    Backend,
    /// The slow stock service (axum) the backend calls: `GET /stock/{sku}`, `POST /reserve`.
    Dependency,
}

impl Role {
    /// Every role, in the order the orchestrator starts them (callees first).
    pub const ALL: [Role; 3] = [Role::Dependency, Role::Backend, Role::Gateway];

    /// The role's name on the command line.
    ///
    /// ```
    /// use observe_examples::tour::Role;
    /// assert_eq!(Role::Backend.as_str(), "backend");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Gateway => "gateway",
            Role::Backend => "backend",
            Role::Dependency => "dependency",
        }
    }

    /// The `service.name` the role reports in its logs, spans and `target_info`.
    ///
    /// ```
    /// use observe_examples::tour::Role;
    /// assert_eq!(Role::Gateway.service_name(), "tour-gateway");
    /// ```
    pub fn service_name(self) -> &'static str {
        match self {
            Role::Gateway => "tour-gateway",
            Role::Backend => "tour-backend",
            Role::Dependency => "tour-dependency",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = ArgError;
    fn from_str(s: &str) -> Result<Self, ArgError> {
        match s {
            "gateway" => Ok(Role::Gateway),
            "backend" => Ok(Role::Backend),
            "dependency" => Ok(Role::Dependency),
            _ => Err(ArgError::Invalid {
                flag: "--role",
                value: s.to_string(),
                expected: "gateway, backend or dependency",
            }),
        }
    }
}

/// A fault the backend injects into `shop.Orders/GetOrder` (every `GET /orders/{id}`), for
/// alert drills.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Fault {
    /// No fault (the default).
    #[default]
    None,
    /// `GetOrder` takes [`crate::tour::SLOW_FAULT_DELAY`] longer: a latency SLO burns.
    Slow,
    /// `GetOrder` fails with `INTERNAL` (the gateway answers 500): an error-ratio SLO burns.
    Fail,
}

impl Fault {
    /// The fault's name on the command line and in `TOUR_FAULT`.
    ///
    /// ```
    /// use observe_examples::tour::Fault;
    /// assert_eq!("fail".parse::<Fault>().unwrap(), Fault::Fail);
    /// assert_eq!(Fault::Slow.as_str(), "slow");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            Fault::None => "none",
            Fault::Slow => "slow",
            Fault::Fail => "fail",
        }
    }
}

impl FromStr for Fault {
    type Err = ArgError;
    fn from_str(s: &str) -> Result<Self, ArgError> {
        match s {
            "none" | "" => Ok(Fault::None),
            "slow" => Ok(Fault::Slow),
            "fail" => Ok(Fault::Fail),
            _ => Err(ArgError::Invalid {
                flag: "--fault",
                value: s.to_string(),
                expected: "none, slow or fail",
            }),
        }
    }
}

/// What was wrong with the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArgError {
    /// A flag this program does not know.
    Unknown(String),
    /// A flag given without its value.
    MissingValue(&'static str),
    /// A value that does not parse.
    Invalid {
        /// The flag (or environment variable).
        flag: &'static str,
        /// What was given.
        value: String,
        /// What would have been accepted.
        expected: &'static str,
    },
    /// A service role started without a flag it needs.
    Required {
        /// The role.
        role: Role,
        /// The flag.
        flag: &'static str,
    },
}

impl fmt::Display for ArgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ArgError::Unknown(a) => write!(f, "unknown argument {a:?} (try --help)"),
            ArgError::MissingValue(flag) => write!(f, "{flag} needs a value"),
            ArgError::Invalid {
                flag,
                value,
                expected,
            } => write!(f, "{flag}={value:?} is invalid: expected {expected}"),
            ArgError::Required { role, flag } => write!(f, "--role {role} needs {flag}"),
        }
    }
}

impl std::error::Error for ArgError {}

/// The orchestrator's options.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TourArgs {
    /// The backend's fault (`--fault`, else `TOUR_FAULT`).
    pub fault: Fault,
    /// `--serve`: start the services, print their ports as one JSON line, run until killed.
    pub serve: bool,
}

/// One service's options.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoleArgs {
    /// The role.
    pub role: Role,
    /// Main listening port (HTTP for gateway and dependency, gRPC for the backend); 0 = any.
    pub port: u16,
    /// The backend's `/metrics` port (the others serve `/metrics` on their main port); 0 = any.
    pub metrics_port: u16,
    /// Port of the tour's `/tour/spans` endpoint; 0 = any.
    pub admin_port: u16,
    /// The service this one calls: the backend's gRPC address for the gateway, the
    /// dependency's HTTP address for the backend.
    pub upstream: Option<SocketAddr>,
    /// The injected fault (backend only).
    pub fault: Fault,
    /// Exit when standard input closes: the orchestrator holds the pipe, so its children never
    /// outlive it, however it exits.
    pub exit_on_stdin_eof: bool,
}

/// What the command line asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// `--help`.
    Help,
    /// Run the tour (or `--serve`).
    Tour(TourArgs),
    /// Run one service.
    Role(RoleArgs),
}

/// The usage text.
pub const USAGE: &str = "\
observe tour: three instrumented services, one trace, printed.

USAGE:
    tour [--fault none|slow|fail] [--serve]
    tour --role gateway|backend|dependency [--port N] [--metrics-port N] [--admin-port N]
         [--upstream HOST:PORT] [--fault none|slow|fail] [--exit-on-stdin-eof]

Without --role: starts the three services as child processes, sends a burst of requests and
prints logs, RED metrics and the slowest trace. --serve starts them and prints their ports as
one JSON line instead, then their JSON logs, until killed. TOUR_FAULT is read when --fault is
not given. OTEL_* variables reach every service (except OTEL_SERVICE_NAME: each has its own).
";

/// Parses `args` (without the program name); `fault_env` is `TOUR_FAULT`.
///
/// ```
/// use observe_examples::tour::{cli, Command, Fault, Role};
/// let args = ["--role", "backend", "--upstream", "127.0.0.1:8081", "--fault", "slow"];
/// let cmd = cli::parse(args.map(String::from), None).unwrap();
/// let Command::Role(r) = cmd else { panic!() };
/// assert_eq!((r.role, r.fault, r.port), (Role::Backend, Fault::Slow, 0));
/// assert!(cli::parse(["--fault", "sideways"].map(String::from), None).is_err());
/// ```
pub fn parse(
    args: impl IntoIterator<Item = String>,
    fault_env: Option<&str>,
) -> Result<Command, ArgError> {
    let mut role = None;
    let mut fault = None;
    let mut serve = false;
    let mut port = 0;
    let mut metrics_port = 0;
    let mut admin_port = 0;
    let mut upstream = None;
    let mut exit_on_stdin_eof = false;
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        // Both `--flag value` and `--flag=value`.
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (arg, None),
        };
        let mut value = |name: &'static str| -> Result<String, ArgError> {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or(ArgError::MissingValue(name))
        };
        match flag.as_str() {
            "-h" | "--help" => return Ok(Command::Help),
            "--serve" => serve = true,
            "--exit-on-stdin-eof" => exit_on_stdin_eof = true,
            "--role" => role = Some(value("--role")?.parse::<Role>()?),
            "--fault" => fault = Some(value("--fault")?.parse::<Fault>()?),
            "--port" => port = parse_port("--port", &value("--port")?)?,
            "--metrics-port" => {
                metrics_port = parse_port("--metrics-port", &value("--metrics-port")?)?
            }
            "--admin-port" => admin_port = parse_port("--admin-port", &value("--admin-port")?)?,
            "--upstream" => {
                let v = value("--upstream")?;
                upstream = Some(v.parse().map_err(|_| ArgError::Invalid {
                    flag: "--upstream",
                    value: v,
                    expected: "a socket address such as 127.0.0.1:50051",
                })?);
            }
            _ => return Err(ArgError::Unknown(flag)),
        }
    }
    let fault = match (fault, fault_env) {
        (Some(f), _) => f,
        (None, Some(env)) => env.parse().map_err(|_| ArgError::Invalid {
            flag: "TOUR_FAULT",
            value: env.to_string(),
            expected: "none, slow or fail",
        })?,
        (None, None) => Fault::None,
    };
    let Some(role) = role else {
        return Ok(Command::Tour(TourArgs { fault, serve }));
    };
    if upstream.is_none() && role != Role::Dependency {
        return Err(ArgError::Required {
            role,
            flag: "--upstream",
        });
    }
    Ok(Command::Role(RoleArgs {
        role,
        port,
        metrics_port,
        admin_port,
        upstream,
        fault,
        exit_on_stdin_eof,
    }))
}

fn parse_port(flag: &'static str, v: &str) -> Result<u16, ArgError> {
    v.parse().map_err(|_| ArgError::Invalid {
        flag,
        value: v.to_string(),
        expected: "a port number 0-65535",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str], env: Option<&str>) -> Result<Command, ArgError> {
        parse(args.iter().map(|s| s.to_string()), env)
    }

    #[test]
    fn orchestrator_defaults_and_env_fault() {
        assert_eq!(p(&[], None), Ok(Command::Tour(TourArgs::default())));
        assert_eq!(
            p(&["--serve"], Some("fail")),
            Ok(Command::Tour(TourArgs {
                fault: Fault::Fail,
                serve: true
            }))
        );
        // The flag wins over the environment.
        assert_eq!(
            p(&["--fault=slow"], Some("fail")),
            Ok(Command::Tour(TourArgs {
                fault: Fault::Slow,
                serve: false
            }))
        );
    }

    #[test]
    fn bad_values_name_the_flag_and_value() {
        let e = p(&["--port", "70000"], None).unwrap_err();
        assert_eq!(
            e.to_string(),
            "--port=\"70000\" is invalid: expected a port number 0-65535"
        );
        let e = p(&[], Some("sideways")).unwrap_err();
        assert!(e.to_string().starts_with("TOUR_FAULT=\"sideways\""), "{e}");
        assert_eq!(p(&["--role"], None), Err(ArgError::MissingValue("--role")));
        assert_eq!(
            p(&["--bogus"], None),
            Err(ArgError::Unknown("--bogus".into()))
        );
        assert_eq!(
            p(&["--role", "gateway"], None),
            Err(ArgError::Required {
                role: Role::Gateway,
                flag: "--upstream"
            })
        );
    }

    #[test]
    fn role_args() {
        let Ok(Command::Role(r)) = p(
            &[
                "--role",
                "gateway",
                "--port",
                "8080",
                "--admin-port=9",
                "--upstream",
                "127.0.0.1:50051",
                "--exit-on-stdin-eof",
            ],
            None,
        ) else {
            panic!("not a role")
        };
        assert_eq!(r.role, Role::Gateway);
        assert_eq!((r.port, r.admin_port, r.metrics_port), (8080, 9, 0));
        assert_eq!(r.upstream, Some("127.0.0.1:50051".parse().unwrap()));
        assert!(r.exit_on_stdin_eof);
    }
}
