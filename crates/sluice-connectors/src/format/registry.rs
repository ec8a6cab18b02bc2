//! A small async client for the Confluent Schema Registry, as the `avro-confluent` format needs it:
//! the writer schema of an id (`GET /schemas/ids/{id}`, cached forever: ids are immutable) and the id
//! of a schema under a subject (`POST /subjects/{subject}/versions`, cached per subject and schema).
//!
//! Invariants: credentials never appear in an error message or a log line (the URLs we print have
//! their user info removed); the caches are behind short `std` mutexes never held across an await,
//! so one client can be shared (`Arc`) by the key and value formats of a table.

use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, CONTENT_TYPE};
use sluice_common::{OptionBag, OptionError, SluiceError};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const MEDIA_TYPE: &str = "application/vnd.schemaregistry.v1+json";

/// How the client authenticates.
#[derive(Clone, PartialEq, Eq, Default)]
pub enum RegistryAuth {
    #[default]
    None,
    Basic {
        user: String,
        password: String,
    },
    Bearer(String),
}

impl std::fmt::Debug for RegistryAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print secrets, even in debug output.
        match self {
            RegistryAuth::None => f.write_str("None"),
            RegistryAuth::Basic { user, .. } => write!(f, "Basic {{ user: {user:?}, password: *** }}"),
            RegistryAuth::Bearer(_) => f.write_str("Bearer(***)"),
        }
    }
}

/// Where to reach the registry and how. Built from a format's options by
/// [`RegistryConfig::from_options`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RegistryConfig {
    /// One or more base URLs (Flink and Confluent accept a comma-separated list); tried in order
    /// when one cannot be reached.
    pub urls: Vec<String>,
    pub auth: RegistryAuth,
    /// A PEM file of CA certificates to trust (`ssl.truststore.location` when it is PEM).
    pub truststore: Option<PathBuf>,
    /// A client identity: PKCS#12 file and its password (`ssl.keystore.*`).
    pub keystore: Option<(PathBuf, String)>,
}

impl RegistryConfig {
    /// Pulls `{prefix}{format}.url` and the authentication and TLS options of Flink's
    /// `avro-confluent` format (`format` is `avro-confluent`). `{format}.properties.*` are accepted
    /// and ignored.
    pub fn from_options(bag: &mut OptionBag, prefix: &str, format: &str) -> Result<Self, OptionError> {
        let key = |k: &str| format!("{prefix}{format}.{k}");
        let url_key = key("url");
        let url = bag.required_string(&url_key)?;
        let mut urls = Vec::new();
        let mut auth = RegistryAuth::None;
        for u in url.split(',').map(str::trim).filter(|u| !u.is_empty()) {
            let mut parsed = reqwest::Url::parse(u).map_err(|e| OptionError::Invalid {
                key: url_key.clone(),
                value: strip_user_info(u),
                message: format!("not a URL ({e})"),
            })?;
            if !matches!(parsed.scheme(), "http" | "https") {
                return Err(OptionError::Invalid {
                    key: url_key.clone(),
                    value: strip_user_info(u),
                    message: "expected an http:// or https:// URL".into(),
                });
            }
            if !parsed.username().is_empty() {
                auth = RegistryAuth::Basic {
                    user: percent_decode(parsed.username()),
                    password: percent_decode(parsed.password().unwrap_or("")),
                };
                let _ = parsed.set_username("");
                let _ = parsed.set_password(None);
            }
            urls.push(parsed.as_str().trim_end_matches('/').to_string());
        }
        if urls.is_empty() {
            return Err(OptionError::Invalid { key: url_key, value: url, message: "expected a URL".into() });
        }

        let source = bag.one_of(&key("basic-auth.credentials-source"), &["USER_INFO", "URL", "SASL_INHERIT"])?;
        let user_info_key = key("basic-auth.user-info");
        let user_info = bag.string(&user_info_key);
        match (source, user_info) {
            (Some("SASL_INHERIT"), _) => {
                return Err(OptionError::Invalid {
                    key: key("basic-auth.credentials-source"),
                    value: "SASL_INHERIT".into(),
                    message: "is not supported by sluice; use USER_INFO with 'basic-auth.user-info'".into(),
                })
            }
            (Some("URL"), Some(_)) => {
                return Err(OptionError::Invalid {
                    key: user_info_key,
                    value: "***".into(),
                    message: "cannot be combined with credentials-source 'URL' (the credentials are in the URL)".into(),
                })
            }
            (Some("URL"), None) if auth == RegistryAuth::None => {
                return Err(OptionError::Invalid {
                    key: key("basic-auth.credentials-source"),
                    value: "URL".into(),
                    message: "the URL holds no 'user:secret@'".into(),
                })
            }
            (Some("USER_INFO"), None) => {
                return Err(OptionError::Missing { connector: bag.connector().to_string(), key: user_info_key })
            }
            (_, Some(info)) => {
                let (user, password) = info.split_once(':').ok_or_else(|| OptionError::Invalid {
                    key: user_info_key.clone(),
                    value: "***".into(),
                    message: "expected 'user:secret'".into(),
                })?;
                auth = RegistryAuth::Basic { user: user.to_string(), password: password.to_string() };
            }
            _ => {}
        }

        let bearer_source = bag.one_of(&key("bearer-auth.credentials-source"), &["STATIC_TOKEN"])?;
        let token_key = key("bearer-auth.token");
        if let Some(token) = bag.string(&token_key) {
            if matches!(auth, RegistryAuth::Basic { .. }) {
                return Err(OptionError::Invalid {
                    key: token_key,
                    value: "***".into(),
                    message: "cannot be combined with basic authentication".into(),
                });
            }
            auth = RegistryAuth::Bearer(token);
        } else if bearer_source.is_some() {
            return Err(OptionError::Missing { connector: bag.connector().to_string(), key: token_key });
        }

        let truststore = bag.string(&key("ssl.truststore.location")).map(PathBuf::from);
        let truststore_password = bag.string(&key("ssl.truststore.password"));
        if let Some(path) = &truststore {
            if !is_pem(path) {
                return Err(OptionError::Invalid {
                    key: key("ssl.truststore.location"),
                    value: path.display().to_string(),
                    message: "expected a PEM file of CA certificates (.pem, .crt, .cer); JKS and PKCS#12 \
                              truststores are not supported"
                        .into(),
                });
            }
        }
        // A PEM truststore has no password; the option is accepted for compatibility.
        let _ = truststore_password;
        let keystore_location = bag.string(&key("ssl.keystore.location")).map(PathBuf::from);
        let keystore_password = bag.string(&key("ssl.keystore.password")).unwrap_or_default();
        let keystore = keystore_location.map(|p| (p, keystore_password));
        // Confluent client properties: accepted for compatibility; sluice's client has no such knobs.
        let ignored = bag.with_prefix(&key("properties."));
        if !ignored.is_empty() {
            tracing::warn!(keys = ?ignored.keys().collect::<Vec<_>>(), "Ignoring schema registry client properties");
        }
        Ok(RegistryConfig { urls, auth, truststore, keystore })
    }
}

fn is_pem(path: &std::path::Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()).map(|e| e.to_ascii_lowercase()).as_deref(),
        Some("pem" | "crt" | "cer")
    )
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push(h * 16 + l);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `http://user:secret@host/x` -> `http://host/x`, for messages.
fn strip_user_info(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}{}", &url[..s + 3], &url[at + 1..]),
        _ => url.to_string(),
    }
}

/// A writer schema as the registry holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisteredSchema {
    /// `AVRO` (the registry's default when it omits the field), `PROTOBUF` or `JSON`.
    pub schema_type: String,
    pub schema: String,
    /// Whether the schema references schemas of other subjects (not supported by the decoder).
    pub has_references: bool,
}

/// The registry client. Cheap to share behind an `Arc`.
pub struct SchemaRegistryClient {
    http: reqwest::Client,
    urls: Vec<String>,
    auth: RegistryAuth,
    by_id: Mutex<HashMap<u32, Arc<RegisteredSchema>>>,
    by_subject: Mutex<HashMap<(String, String), u32>>,
}

impl std::fmt::Debug for SchemaRegistryClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SchemaRegistryClient").field("urls", &self.urls).field("auth", &self.auth).finish()
    }
}

impl SchemaRegistryClient {
    pub fn new(config: &RegistryConfig) -> Result<Self, SluiceError> {
        if config.urls.is_empty() {
            return Err(SluiceError::user("schema registry: no URL"));
        }
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_static(MEDIA_TYPE));
        let mut builder = reqwest::Client::builder()
            .default_headers(headers)
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(30));
        if let Some(path) = &config.truststore {
            let pem = std::fs::read(path)
                .map_err(|e| SluiceError::user(format!("schema registry truststore {}: {e}", path.display())))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                SluiceError::user(format!("schema registry truststore {}: not PEM certificates ({e})", path.display()))
            })?;
            for c in certs {
                builder = builder.add_root_certificate(c);
            }
        }
        if let Some((path, password)) = &config.keystore {
            let der = std::fs::read(path)
                .map_err(|e| SluiceError::user(format!("schema registry keystore {}: {e}", path.display())))?;
            let id = reqwest::Identity::from_pkcs12_der(&der, password).map_err(|e| {
                SluiceError::user(format!(
                    "schema registry keystore {}: not a PKCS#12 file or wrong password ({e})",
                    path.display()
                ))
            })?;
            builder = builder.identity(id);
        }
        let http = builder
            .build()
            .map_err(|e| SluiceError::internal(format!("schema registry: cannot build the HTTP client: {e}")))?;
        Ok(SchemaRegistryClient {
            http,
            urls: config.urls.clone(),
            auth: config.auth.clone(),
            by_id: Mutex::new(HashMap::new()),
            by_subject: Mutex::new(HashMap::new()),
        })
    }

    /// The first base URL, without credentials.
    pub fn url(&self) -> &str {
        &self.urls[0]
    }

    /// The schema with this id; `None` when the registry does not know it (HTTP 404).
    pub async fn schema_by_id(&self, id: u32) -> Result<Option<Arc<RegisteredSchema>>, SluiceError> {
        if let Some(s) = self.by_id.lock().expect("cache lock").get(&id) {
            return Ok(Some(s.clone()));
        }
        let path = format!("/schemas/ids/{id}");
        let Some(body) = self.send(reqwest::Method::GET, &path, None).await? else {
            return Ok(None);
        };
        let schema = body.get("schema").and_then(|s| s.as_str()).ok_or_else(|| {
            SluiceError::external(format!("schema registry {}{path}: the answer has no \"schema\"", self.urls[0]))
        })?;
        let schema_type = body.get("schemaType").and_then(|s| s.as_str()).unwrap_or("AVRO").to_string();
        let has_references = body.get("references").and_then(|r| r.as_array()).is_some_and(|r| !r.is_empty());
        let s = Arc::new(RegisteredSchema { schema_type, schema: schema.to_string(), has_references });
        self.by_id.lock().expect("cache lock").insert(id, s.clone());
        Ok(Some(s))
    }

    /// Registers `schema` (Avro JSON) under `subject` (or finds it there) and returns its id.
    pub async fn register(&self, subject: &str, schema: &str) -> Result<u32, SluiceError> {
        let key = (subject.to_string(), schema.to_string());
        if let Some(id) = self.by_subject.lock().expect("cache lock").get(&key) {
            return Ok(*id);
        }
        let path = format!("/subjects/{}/versions", encode_path_segment(subject));
        let body = serde_json::json!({ "schema": schema });
        let answer = self.send(reqwest::Method::POST, &path, Some(body)).await?.ok_or_else(|| {
            SluiceError::external(format!("schema registry {}{path}: subject '{subject}' not found", self.urls[0]))
        })?;
        let id = answer.get("id").and_then(|i| i.as_u64()).and_then(|i| u32::try_from(i).ok()).ok_or_else(|| {
            SluiceError::external(format!("schema registry {}{path}: the answer has no schema \"id\"", self.urls[0]))
        })?;
        self.by_subject.lock().expect("cache lock").insert(key, id);
        self.by_id.lock().expect("cache lock").entry(id).or_insert_with(|| {
            Arc::new(RegisteredSchema { schema_type: "AVRO".into(), schema: schema.to_string(), has_references: false })
        });
        Ok(id)
    }

    /// One request, tried against each URL until one answers. `Ok(None)` for 404.
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<Option<serde_json::Value>, SluiceError> {
        let mut last_error = None;
        for base in &self.urls {
            let url = format!("{base}{path}");
            let mut req = self.http.request(method.clone(), &url);
            req = match &self.auth {
                RegistryAuth::None => req,
                RegistryAuth::Basic { user, password } => req.basic_auth(user, Some(password)),
                RegistryAuth::Bearer(token) => req.bearer_auth(token),
            };
            if let Some(b) = &body {
                req = req.header(CONTENT_TYPE, MEDIA_TYPE).body(b.to_string());
            }
            let resp = match req.send().await {
                Ok(r) => r,
                Err(e) => {
                    // Connection problems: try the next URL. reqwest's message names the URL we built,
                    // which has no credentials.
                    last_error = Some(SluiceError::external(format!(
                        "schema registry {url} cannot be reached: {}",
                        error_chain(&e)
                    )));
                    continue;
                }
            };
            let status = resp.status();
            let text = resp.text().await.map_err(|e| {
                SluiceError::external(format!("schema registry {url}: reading the answer failed: {}", error_chain(&e)))
            })?;
            if status == reqwest::StatusCode::NOT_FOUND {
                return Ok(None);
            }
            if !status.is_success() {
                let detail = match serde_json::from_str::<serde_json::Value>(&text) {
                    Ok(v) => format!(
                        "error_code {}: {}",
                        v.get("error_code").map(|c| c.to_string()).unwrap_or_else(|| "?".into()),
                        v.get("message").and_then(|m| m.as_str()).unwrap_or("")
                    ),
                    Err(_) => text.chars().take(200).collect(),
                };
                let mut err = SluiceError::external(format!(
                    "schema registry {method} {url} answered {}: {detail}",
                    status.as_u16()
                ));
                // 4xx (bad credentials, incompatible schema) will not get better by retrying.
                err.retryable = status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS;
                return Err(err);
            }
            return serde_json::from_str(&text)
                .map(Some)
                .map_err(|e| SluiceError::external(format!("schema registry {url}: the answer is not JSON ({e})")));
        }
        Err(last_error.expect("at least one URL was tried"))
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        let m = inner.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        src = inner.source();
    }
    s
}

/// Percent-encodes a subject for a URL path (subjects may hold `/`, `:` and other characters).
fn encode_path_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Starts the registry test double (`scripts/services/schema_registry.py`) on a free loopback port
/// for one test; stopped when dropped. `None` (the test then skips) without the script or Python.
#[cfg(test)]
pub(crate) mod test_double {
    use std::net::{TcpListener, TcpStream};
    use std::path::PathBuf;
    use std::process::{Child, Command, Stdio};
    use std::time::{Duration, Instant};

    pub struct Double {
        child: Child,
        pub url: String,
    }

    impl Drop for Double {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    pub fn start(basic_auth: Option<&str>) -> Option<Double> {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/services/schema_registry.py");
        if !script.exists() {
            eprintln!("skipped: no {}", script.display());
            return None;
        }
        let port = TcpListener::bind("127.0.0.1:0").ok()?.local_addr().ok()?.port();
        let mut cmd = Command::new("python3");
        cmd.arg(&script).args(["--host", "127.0.0.1", "--port", &port.to_string()]);
        cmd.stdout(Stdio::null()).stderr(Stdio::null());
        match basic_auth {
            Some(a) => cmd.env("SCHEMA_REGISTRY_BASIC_AUTH", a),
            None => cmd.env_remove("SCHEMA_REGISTRY_BASIC_AUTH"),
        };
        let child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                eprintln!("skipped: cannot run python3: {e}");
                return None;
            }
        };
        let double = Double { child, url: format!("http://127.0.0.1:{port}") };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "the registry double did not start on port {port}");
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(double)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bag(pairs: &[(&str, &str)]) -> OptionBag {
        OptionBag::new("kafka", pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
    }

    #[test]
    fn options_with_prefix_and_user_info() {
        let mut b = bag(&[
            ("value.avro-confluent.url", "http://localhost:8081/"),
            ("value.avro-confluent.basic-auth.credentials-source", "USER_INFO"),
            ("value.avro-confluent.basic-auth.user-info", "fred:let:me:in"),
        ]);
        let c = RegistryConfig::from_options(&mut b, "value.", "avro-confluent").unwrap();
        assert_eq!(c.urls, vec!["http://localhost:8081".to_string()]);
        assert_eq!(c.auth, RegistryAuth::Basic { user: "fred".into(), password: "let:me:in".into() });
        b.finish().unwrap();
        assert!(!format!("{:?}", c).contains("let:me"), "no secrets in debug output");
    }

    #[test]
    fn credentials_in_the_url_are_moved_out_of_it() {
        let mut b = bag(&[
            ("avro-confluent.url", "https://u:p%40ss@reg.example:8081,http://b:8081"),
            ("avro-confluent.basic-auth.credentials-source", "URL"),
        ]);
        let c = RegistryConfig::from_options(&mut b, "", "avro-confluent").unwrap();
        assert_eq!(c.urls, vec!["https://reg.example:8081".to_string(), "http://b:8081".to_string()]);
        assert_eq!(c.auth, RegistryAuth::Basic { user: "u".into(), password: "p@ss".into() });
    }

    #[test]
    fn bad_auth_options_are_precise() {
        let mut b = bag(&[("avro-confluent.url", "http://r"), ("avro-confluent.basic-auth.user-info", "nocolon")]);
        let e = RegistryConfig::from_options(&mut b, "", "avro-confluent").unwrap_err().to_string();
        assert_eq!(e, "option 'avro-confluent.basic-auth.user-info': expected 'user:secret', got '***'");
        let mut b = bag(&[("avro-confluent.url", "ftp://r")]);
        let e = RegistryConfig::from_options(&mut b, "", "avro-confluent").unwrap_err().to_string();
        assert!(e.contains("expected an http:// or https:// URL"), "{e}");
        let mut b = bag(&[("avro-confluent.url", "http://r"), ("avro-confluent.bearer-auth.token", "t0k")]);
        let c = RegistryConfig::from_options(&mut b, "", "avro-confluent").unwrap();
        assert_eq!(c.auth, RegistryAuth::Bearer("t0k".into()));
    }

    #[test]
    fn helpers() {
        assert_eq!(strip_user_info("http://a:b@h:1/x"), "http://h:1/x");
        assert_eq!(encode_path_segment("orders-value"), "orders-value");
        assert_eq!(encode_path_segment("a/b c"), "a%2Fb%20c");
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
    }

    fn client(url: &str, auth: RegistryAuth) -> SchemaRegistryClient {
        SchemaRegistryClient::new(&RegistryConfig { urls: vec![url.to_string()], auth, ..Default::default() }).unwrap()
    }

    const SCHEMA: &str = r#"{"type":"record","name":"r","fields":[{"name":"a","type":"long"}]}"#;

    #[test]
    fn registers_and_fetches_schemas() {
        let Some(reg) = test_double::start(None) else { return };
        runtime().block_on(async {
            let c = client(&reg.url, RegistryAuth::None);
            let id = c.register("orders-value", SCHEMA).await.unwrap();
            assert_eq!(c.register("orders-value", SCHEMA).await.unwrap(), id, "cached");
            // Another client (no cache) gets the same id for the same schema.
            let other = client(&reg.url, RegistryAuth::None);
            assert_eq!(other.register("orders-value", SCHEMA).await.unwrap(), id);
            let s = other.schema_by_id(id).await.unwrap().unwrap();
            assert_eq!(s.schema_type, "AVRO");
            assert_eq!(
                apache_avro::Schema::parse_str(&s.schema).unwrap(),
                apache_avro::Schema::parse_str(SCHEMA).unwrap()
            );
            assert!(other.schema_by_id(id + 1000).await.unwrap().is_none(), "unknown ids are None");

            let e = c.register("bad", "{\"type\": 5}").await.unwrap_err();
            assert!(!e.retryable);
            assert!(
                e.message.starts_with(&format!(
                    "schema registry POST {}/subjects/bad/versions answered 422: error_code 42201:",
                    reg.url
                )),
                "{}",
                e.message
            );
        });
    }

    #[test]
    fn basic_auth_is_sent_and_never_shown() {
        let Some(reg) = test_double::start(Some("fred:s3cret")) else { return };
        runtime().block_on(async {
            let e = client(&reg.url, RegistryAuth::None).schema_by_id(1).await.unwrap_err();
            assert!(e.message.contains("answered 401"), "{}", e.message);
            let wrong = RegistryAuth::Basic { user: "fred".into(), password: "wrong-pw".into() };
            let e = client(&reg.url, wrong).register("s", SCHEMA).await.unwrap_err();
            assert!(e.message.contains("answered 401") && !e.message.contains("wrong-pw"), "{}", e.message);
            let good = RegistryAuth::Basic { user: "fred".into(), password: "s3cret".into() };
            client(&reg.url, good).register("s", SCHEMA).await.unwrap();
            // Credentials given in the URL work the same and do not show in messages.
            let url = reg.url.replace("http://", "http://fred:s3cret@");
            let mut bag = OptionBag::new("kafka", [("avro-confluent.url".to_string(), url)].into_iter().collect());
            let config = RegistryConfig::from_options(&mut bag, "", "avro-confluent").unwrap();
            let c = SchemaRegistryClient::new(&config).unwrap();
            assert_eq!(c.url(), reg.url);
            c.register("s", SCHEMA).await.unwrap();
        });
    }

    #[test]
    fn an_unreachable_registry_is_a_retryable_error() {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let url = format!("http://127.0.0.1:{port}");
        let e = runtime().block_on(client(&url, RegistryAuth::None).schema_by_id(3)).unwrap_err();
        assert!(e.retryable);
        assert_eq!(e.domain, sluice_common::ErrorDomain::External);
        assert!(
            e.message.starts_with(&format!("schema registry {url}/schemas/ids/3 cannot be reached")),
            "{}",
            e.message
        );
    }
}
