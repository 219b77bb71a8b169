//! Where a table lives: an S3 URL (any S3-compatible store) or a local
//! folder, opened as an [`ObjectStore`] with retries, and the one
//! current-thread runtime its async calls run on.

use crate::aws_profile::Profile;
use crate::PublishError;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{BackoffConfig, ObjectStore, RetryConfig};
use std::sync::Arc;
use std::time::Duration;

/// An opened destination: the store, and the prefix tables go under.
pub(crate) struct Destination {
    pub(crate) store: Arc<dyn ObjectStore>,
    pub(crate) prefix: ObjectPath,
    /// The URL as given, for messages.
    pub(crate) url: String,
}

/// Retries for refused connections, timeouts, 5xx and throttling (429/503
/// SlowDown): jittered exponential backoff from 100 ms up to 15 s, for two
/// minutes per request. The bound is the time, not the count: the jitter
/// can make a dozen retries last only two seconds, too short for a store
/// that restarts. A request still failing after that fails the publish,
/// which can be run again (it is idempotent).
fn retry() -> RetryConfig {
    RetryConfig {
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(15),
            base: 2.0,
        },
        max_retries: 1000,
        retry_timeout: Duration::from_secs(120),
    }
}

/// Opens `url`: `s3://bucket/prefix` (credentials from the usual `AWS_*`
/// variables or the AWS profile files; `endpoint`, else `AWS_ENDPOINT_URL`,
/// else the profile's `endpoint_url`, selects an S3-compatible store), or a
/// local folder (`file:///path` or a plain path).
pub(crate) fn open(url: &str, endpoint: Option<&str>) -> Result<Destination, PublishError> {
    let bad = |why: &str| PublishError::Config(format!("{url}: {why}"));
    if let Some(rest) = url.strip_prefix("s3://") {
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(bad("no bucket (s3://BUCKET/PREFIX)"));
        }
        let builder = AmazonS3Builder::from_env().with_bucket_name(bucket).with_retry(retry());
        let store = with_settings(builder, endpoint)
            .build()
            .map_err(|e| bad(&e.to_string()))?;
        return Ok(Destination {
            store: Arc::new(store),
            prefix: ObjectPath::from(prefix.trim_end_matches('/')),
            url: url.to_owned(),
        });
    }
    if url.contains("://") && !url.starts_with("file://") {
        return Err(bad("unsupported scheme (use s3://BUCKET/PREFIX or a local folder)"));
    }
    let dir = std::path::PathBuf::from(url.strip_prefix("file://").unwrap_or(url));
    std::fs::create_dir_all(&dir).map_err(|e| bad(&format!("cannot create the folder: {e}")))?;
    let store = LocalFileSystem::new_with_prefix(&dir).map_err(|e| bad(&e.to_string()))?;
    Ok(Destination {
        store: Arc::new(store),
        prefix: ObjectPath::default(),
        url: url.to_owned(),
    })
}

/// The endpoint (`--s3-endpoint`, else `AWS_ENDPOINT_URL`, else the
/// profile's), region (variables, else the profile's, else `us-east-1`) and,
/// when no `AWS_ACCESS_KEY_ID` is set, the profile's keys.
fn with_settings(mut builder: AmazonS3Builder, endpoint: Option<&str>) -> AmazonS3Builder {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let profile = Profile::from_files();
    if var("AWS_ACCESS_KEY_ID").is_none() {
        if let (Some(key), Some(secret)) = (&profile.access_key_id, &profile.secret_access_key) {
            builder = builder.with_access_key_id(key).with_secret_access_key(secret);
            if let Some(token) = &profile.session_token {
                builder = builder.with_token(token);
            }
        }
    }
    let endpoint = endpoint
        .map(str::to_owned)
        .or_else(|| var("AWS_ENDPOINT_URL"))
        .or(profile.endpoint_url);
    if let Some(endpoint) = endpoint {
        builder = builder
            .with_allow_http(endpoint.starts_with("http://"))
            .with_endpoint(endpoint);
    }
    if var("AWS_REGION").is_none() && var("AWS_DEFAULT_REGION").is_none() {
        builder = builder.with_region(profile.region.unwrap_or_else(|| "us-east-1".into()));
    }
    builder
}

/// A current-thread runtime for the store's async calls: a publish, or a
/// live sync's thread, runs one; nothing else in rlcollect is async.
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, PublishError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| PublishError::Config(format!("cannot start the I/O runtime: {e}")))
}
