//! iceberg's `Storage` on the `object_store` crate, so that data files, manifests and metadata
//! can live on S3 (and S3-compatible stores), Google Cloud Storage or Azure, where Trino, Spark,
//! DuckDB and pyiceberg in other domains read them. iceberg-rust 0.10 ships only local and
//! in-memory storage. Local paths keep going through iceberg's own `LocalFsStorage`, so the
//! embedded default behaves exactly as before.
//!
//! Settings are layered as AWS users expect: the standard environment variables
//! (`AWS_ACCESS_KEY_ID`, `AWS_ENDPOINT_URL`, …, read by `object_store`'s `from_env`), then the
//! catalog's FileIO properties (`s3.endpoint`, `s3.access-key-id`, … as a REST catalog vends them),
//! then meshd's own `storage.*` keys, which win. Instance-profile, container and web-identity
//! credentials come from `object_store` when no key is given.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::ops::Range;
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use iceberg::io::{
    FileMetadata, FileRead, FileWrite, InputFile, LocalFsStorage, OutputFile, Storage,
    StorageConfig, StorageFactory,
};
use iceberg::{Error, ErrorKind};
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
use object_store::buffered::BufWriter;
use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey};
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, ObjectStoreExt, ObjectStoreScheme};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;
use url::Url;

/// Multipart part size: S3's minimum is 5 MiB; a data file is uploaded in parts of this size as
/// the Parquet writer produces it, never held whole in memory.
const PART_SIZE: usize = 8 * 1024 * 1024;
/// Parts in flight per file: with [`PART_SIZE`] this bounds a file's upload buffers to ~40 MiB.
const PARTS_IN_FLIGHT: usize = 4;

/// Builds [`ObjectStorage`] for the catalogs. It carries meshd's `storage.*` keys, which
/// override what the catalog hands to the FileIO.
#[derive(Clone, Default, Serialize, Deserialize)]
pub struct ObjectStorageFactory {
    options: BTreeMap<String, String>,
}

impl fmt::Debug for ObjectStorageFactory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObjectStorageFactory")
            .field("keys", &self.options.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl ObjectStorageFactory {
    /// A factory with meshd's `storage.*` keys (object_store's names: `endpoint`, `region`,
    /// `access_key_id`, `secret_access_key`, `session_token`, `allow_http`, … or their `aws_`,
    /// `google_`, `azure_` forms). An unknown key is refused here rather than ignored later.
    pub fn new(options: BTreeMap<String, String>) -> Result<Self, UnknownStorageKey> {
        for key in options.keys() {
            if !known_key(key) {
                return Err(UnknownStorageKey { key: key.clone() });
            }
        }
        Ok(Self { options })
    }

    /// A storage with only meshd's own keys, for tools that work on files directly.
    pub fn storage(&self) -> ObjectStorage {
        ObjectStorage::new(self.options.clone())
    }
}

/// A `storage.*` key that no object store understands (usually a typo).
#[derive(Debug, Clone)]
pub struct UnknownStorageKey {
    /// The key as written.
    pub key: String,
}

fn known_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    AmazonS3ConfigKey::from_str(&key).is_ok()
        || GoogleConfigKey::from_str(&key).is_ok()
        || AzureConfigKey::from_str(&key).is_ok()
        || key == "allow_http"
}

#[typetag::serde(name = "meshd-object-store")]
impl StorageFactory for ObjectStorageFactory {
    fn build(&self, config: &StorageConfig) -> iceberg::Result<Arc<dyn Storage>> {
        let mut options = from_iceberg_properties(config.props());
        options.extend(self.options.clone());
        Ok(Arc::new(ObjectStorage {
            options,
            stores: Arc::default(),
        }))
    }
}

/// iceberg FileIO property names (what REST catalogs vend) in object_store's terms.
fn from_iceberg_properties(props: &HashMap<String, String>) -> BTreeMap<String, String> {
    let mut options = BTreeMap::new();
    for (key, value) in props {
        let mapped = match key.as_str() {
            "s3.endpoint" => "aws_endpoint",
            "s3.access-key-id" => "aws_access_key_id",
            "s3.secret-access-key" => "aws_secret_access_key",
            "s3.session-token" => "aws_session_token",
            "s3.region" | "client.region" => "aws_region",
            "s3.path-style-access" => {
                let virtual_hosted = !value.eq_ignore_ascii_case("true");
                options.insert(
                    "aws_virtual_hosted_style_request".into(),
                    virtual_hosted.to_string(),
                );
                continue;
            }
            "adls.account-name" => "azure_storage_account_name",
            "adls.account-key" => "azure_storage_account_key",
            "adls.sas-token" => "azure_storage_sas_key",
            "gcs.credentials-json" => "google_service_account_key",
            _ => continue,
        };
        options.insert(mapped.to_string(), value.clone());
    }
    options
}

/// One FileIO's storage: a store per bucket, built on first use and shared by its clones.
#[derive(Clone, Serialize, Deserialize)]
pub struct ObjectStorage {
    options: BTreeMap<String, String>,
    #[serde(skip)]
    stores: Arc<Mutex<HashMap<String, Arc<dyn ObjectStore>>>>,
}

impl fmt::Debug for ObjectStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObjectStorage")
            .field("keys", &self.options.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// Where a path lives: a local file (iceberg's own storage) or an object in a store.
enum Located {
    Local,
    Object(Arc<dyn ObjectStore>, StorePath),
}

impl ObjectStorage {
    /// A storage with these object_store options (tests and tools; catalogs use the factory).
    pub fn new(options: BTreeMap<String, String>) -> Self {
        Self {
            options,
            stores: Arc::default(),
        }
    }

    fn locate(&self, path: &str) -> iceberg::Result<Located> {
        if !path.contains("://") || path.starts_with("file:") {
            return Ok(Located::Local);
        }
        let url = Url::parse(path).map_err(|e| {
            Error::new(
                ErrorKind::DataInvalid,
                format!("`{path}` is not a valid storage URL: {e}"),
            )
        })?;
        let (scheme, object) = ObjectStoreScheme::parse(&url)
            .map_err(|e| storage_error("parsing", path, object_store::Error::from(e)))?;
        let key = format!("{}://{}", url.scheme(), url.authority());
        let mut stores = self.stores.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(store) = stores.get(&key) {
            return Ok(Located::Object(store.clone(), object));
        }
        let store = self
            .build_store(&scheme, &url)
            .map_err(|e| storage_error("configuring the object store for", path, e))?;
        stores.insert(key, store.clone());
        Ok(Located::Object(store, object))
    }

    fn build_store(
        &self,
        scheme: &ObjectStoreScheme,
        url: &Url,
    ) -> object_store::Result<Arc<dyn ObjectStore>> {
        let bucket_url = format!("{}://{}", url.scheme(), url.authority());
        let options = self
            .options
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.as_str()));
        Ok(match scheme {
            ObjectStoreScheme::AmazonS3 => {
                let mut builder = AmazonS3Builder::from_env().with_url(bucket_url);
                for (key, value) in options {
                    if let Ok(k) = AmazonS3ConfigKey::from_str(&key) {
                        builder = builder.with_config(k, value);
                    } else if key == "allow_http" {
                        builder = builder.with_allow_http(value.eq_ignore_ascii_case("true"));
                    }
                }
                // As with the aws CLI, an explicit http:// endpoint is what the user asked for.
                if builder
                    .get_config_value(&AmazonS3ConfigKey::Endpoint)
                    .is_some_and(|e| e.starts_with("http://"))
                {
                    builder = builder.with_allow_http(true);
                }
                Arc::new(builder.build()?)
            }
            ObjectStoreScheme::GoogleCloudStorage => {
                let mut builder = GoogleCloudStorageBuilder::from_env().with_url(bucket_url);
                for (key, value) in options {
                    if let Ok(k) = GoogleConfigKey::from_str(&key) {
                        builder = builder.with_config(k, value);
                    }
                }
                Arc::new(builder.build()?)
            }
            ObjectStoreScheme::MicrosoftAzure => {
                let mut builder = MicrosoftAzureBuilder::from_env().with_url(url.as_str());
                for (key, value) in options {
                    if let Ok(k) = AzureConfigKey::from_str(&key) {
                        builder = builder.with_config(k, value);
                    }
                }
                Arc::new(builder.build()?)
            }
            other => {
                return Err(object_store::Error::NotSupported {
                    source: format!(
                        "{other:?} locations are not supported; use s3://, gs:// or abfss://"
                    )
                    .into(),
                });
            }
        })
    }
}

/// An object store error as an iceberg error whose message says what failed, where, and the
/// likely fix. Kind `Unexpected`, which meshd's commit and write paths retry.
fn storage_error(action: &str, path: &str, e: object_store::Error) -> Error {
    let message = format!("{action} {path}: {}", diagnose(&e));
    let retryable = !matches!(
        e,
        object_store::Error::NotFound { .. } | object_store::Error::NotSupported { .. }
    );
    Error::new(ErrorKind::Unexpected, message).with_retryable(retryable)
}

/// What went wrong with the store in words a user can act on, followed by the store's own
/// message. Error texts from object_store carry URLs and S3 error codes, never credentials.
pub fn diagnose(e: &object_store::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let more = s.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = s.source();
    }
    let hint = if text.contains("NoSuchBucket") || text.contains("bucket does not exist") {
        "no such bucket: create it, or fix the bucket in the location or warehouse"
    } else if text.contains("InvalidAccessKeyId")
        || text.contains("SignatureDoesNotMatch")
        || text.contains("InvalidToken")
        || text.contains("ExpiredToken")
    {
        "bad credentials: check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (or storage.access_key_id / storage.secret_access_key)"
    } else if matches!(e, object_store::Error::PermissionDenied { .. })
        || text.contains("AccessDenied")
        || text.contains("403 Forbidden")
    {
        "access denied: the credentials are valid but may not use this bucket; check its policy and the role's permissions"
    } else if text.contains("error sending request")
        || text.contains("onnection refused")
        || text.contains("dns error")
        || text.contains("timed out")
    {
        "endpoint unreachable: check AWS_ENDPOINT_URL (or storage.endpoint) and that the store is up"
    } else if matches!(e, object_store::Error::NotFound { .. }) {
        "not found"
    } else {
        "object store error"
    };
    format!("{hint} ({text})")
}

#[async_trait]
#[typetag::serde(name = "meshd-object-storage")]
impl Storage for ObjectStorage {
    async fn exists(&self, path: &str) -> iceberg::Result<bool> {
        match self.locate(path)? {
            Located::Local => LocalFsStorage.exists(path).await,
            Located::Object(store, object) => match store.head(&object).await {
                Ok(_) => Ok(true),
                Err(object_store::Error::NotFound { .. }) => Ok(false),
                Err(e) => Err(storage_error("checking", path, e)),
            },
        }
    }

    async fn metadata(&self, path: &str) -> iceberg::Result<FileMetadata> {
        match self.locate(path)? {
            Located::Local => LocalFsStorage.metadata(path).await,
            Located::Object(store, object) => {
                let meta = store
                    .head(&object)
                    .await
                    .map_err(|e| storage_error("reading the size of", path, e))?;
                Ok(FileMetadata { size: meta.size })
            }
        }
    }

    async fn read(&self, path: &str) -> iceberg::Result<Bytes> {
        match self.locate(path)? {
            Located::Local => LocalFsStorage.read(path).await,
            Located::Object(store, object) => {
                let result = store
                    .get(&object)
                    .await
                    .map_err(|e| storage_error("reading", path, e))?;
                result
                    .bytes()
                    .await
                    .map_err(|e| storage_error("reading", path, e))
            }
        }
    }

    async fn reader(&self, path: &str) -> iceberg::Result<Box<dyn FileRead>> {
        match self.locate(path)? {
            Located::Local => LocalFsStorage.reader(path).await,
            Located::Object(store, object) => Ok(Box::new(ObjectRead {
                store,
                object,
                path: path.to_string(),
            })),
        }
    }

    async fn write(&self, path: &str, bs: Bytes) -> iceberg::Result<()> {
        match self.locate(path)? {
            Located::Local => LocalFsStorage.write(path, bs).await,
            Located::Object(store, object) => store
                .put(&object, bs.into())
                .await
                .map(|_| ())
                .map_err(|e| storage_error("writing", path, e)),
        }
    }

    async fn writer(&self, path: &str) -> iceberg::Result<Box<dyn FileWrite>> {
        match self.locate(path)? {
            Located::Local => LocalFsStorage.writer(path).await,
            Located::Object(store, object) => Ok(Box::new(ObjectWrite {
                writer: Some(
                    BufWriter::with_capacity(store, object, PART_SIZE)
                        .with_max_concurrency(PARTS_IN_FLIGHT),
                ),
                path: path.to_string(),
            })),
        }
    }

    async fn delete(&self, path: &str) -> iceberg::Result<()> {
        match self.locate(path)? {
            Located::Local => LocalFsStorage.delete(path).await,
            Located::Object(store, object) => match store.delete(&object).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                Err(e) => Err(storage_error("deleting", path, e)),
            },
        }
    }

    async fn delete_prefix(&self, path: &str) -> iceberg::Result<()> {
        match self.locate(path)? {
            Located::Local => LocalFsStorage.delete_prefix(path).await,
            Located::Object(store, object) => {
                let listed = store.list(Some(&object)).map(|m| m.map(|m| m.location));
                let mut deleted = store.delete_stream(listed.boxed());
                while let Some(result) = deleted.next().await {
                    match result {
                        Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
                        Err(e) => return Err(storage_error("deleting under", path, e)),
                    }
                }
                Ok(())
            }
        }
    }

    async fn delete_stream(&self, mut paths: BoxStream<'static, String>) -> iceberg::Result<()> {
        while let Some(path) = paths.next().await {
            self.delete(&path).await?;
        }
        Ok(())
    }

    fn new_input(&self, path: &str) -> iceberg::Result<InputFile> {
        Ok(InputFile::new(Arc::new(self.clone()), path.to_string()))
    }

    fn new_output(&self, path: &str) -> iceberg::Result<OutputFile> {
        Ok(OutputFile::new(Arc::new(self.clone()), path.to_string()))
    }
}

/// Ranged reads of one object (Parquet footers and column chunks).
struct ObjectRead {
    store: Arc<dyn ObjectStore>,
    object: StorePath,
    path: String,
}

#[async_trait]
impl FileRead for ObjectRead {
    async fn read(&self, range: Range<u64>) -> iceberg::Result<Bytes> {
        self.store
            .get_range(&self.object, range)
            .await
            .map_err(|e| storage_error("reading", &self.path, e))
    }
}

/// A streaming upload: small files are one PUT, larger ones a multipart upload in
/// [`PART_SIZE`] parts; the object appears only when `close` completes it.
struct ObjectWrite {
    /// `None` once closed or aborted: BufWriter panics when used after shutdown.
    writer: Option<BufWriter>,
    path: String,
}

#[async_trait]
impl FileWrite for ObjectWrite {
    async fn write(&mut self, bs: Bytes) -> iceberg::Result<()> {
        let Some(writer) = self.writer.as_mut() else {
            return Err(Error::new(
                ErrorKind::Unexpected,
                format!("writing {} after it was closed", self.path),
            ));
        };
        if let Err(e) = writer.put(bs).await {
            let mut failed = self.writer.take();
            if let Some(w) = failed.as_mut() {
                // Best effort: a multipart upload left open costs storage until the bucket's
                // lifecycle rule removes it.
                let _ = w.abort().await;
            }
            return Err(storage_error("uploading", &self.path, e));
        }
        Ok(())
    }

    async fn close(&mut self) -> iceberg::Result<()> {
        let Some(mut writer) = self.writer.take() else {
            return Ok(());
        };
        writer.shutdown().await.map_err(|e| {
            Error::new(
                ErrorKind::Unexpected,
                format!("completing the upload of {}: {e}", self.path),
            )
            .with_retryable(true)
        })
    }
}

/// Files under a prefix, for `meshd orphans` and the writability probe.
#[derive(Debug, Clone)]
pub struct ListedFile {
    /// Full URL (`s3://bucket/key`) or local path (`file:///…`).
    pub location: String,
    /// Size in bytes.
    pub bytes: u64,
    /// Last modification.
    pub modified: chrono::DateTime<chrono::Utc>,
}

impl ObjectStorage {
    /// Every file under `prefix` (a `file://`, `s3://`, `gs://` or `abfss://` URL).
    pub async fn list(&self, prefix: &str) -> iceberg::Result<Vec<ListedFile>> {
        let (store, object, base): (Arc<dyn ObjectStore>, StorePath, String) = match self
            .locate(prefix)?
        {
            Located::Object(store, object) => {
                let url = Url::parse(prefix)
                    .map_err(|e| Error::new(ErrorKind::DataInvalid, format!("`{prefix}`: {e}")))?;
                (
                    store,
                    object,
                    format!("{}://{}", url.scheme(), url.authority()),
                )
            }
            Located::Local => {
                let local = prefix.strip_prefix("file://").unwrap_or(prefix);
                if !std::path::Path::new(local).exists() {
                    return Ok(Vec::new());
                }
                let object = StorePath::from_filesystem_path(local)
                    .map_err(|e| storage_error("listing", prefix, object_store::Error::from(e)))?;
                let store: Arc<dyn ObjectStore> =
                    Arc::new(object_store::local::LocalFileSystem::new());
                (store, object, "file://".to_string())
            }
        };
        let mut listed = store.list(Some(&object));
        let mut files = Vec::new();
        while let Some(meta) = listed.next().await {
            let meta = meta.map_err(|e| storage_error("listing", prefix, e))?;
            files.push(ListedFile {
                location: format!("{base}/{}", meta.location),
                bytes: meta.size,
                modified: meta.last_modified,
            });
        }
        Ok(files)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iceberg_properties_map_to_object_store_keys() {
        let props = HashMap::from([
            (
                "s3.endpoint".to_string(),
                "http://127.0.0.1:9000".to_string(),
            ),
            ("s3.path-style-access".to_string(), "true".to_string()),
            ("client.region".to_string(), "eu-west-1".to_string()),
            ("uri".to_string(), "sqlite://x".to_string()),
        ]);
        let options = from_iceberg_properties(&props);
        assert_eq!(options["aws_endpoint"], "http://127.0.0.1:9000");
        assert_eq!(options["aws_virtual_hosted_style_request"], "false");
        assert_eq!(options["aws_region"], "eu-west-1");
        assert!(!options.contains_key("uri"));
    }

    /// A port or object name containing "403" once read as access denied (CI, stop 19).
    #[test]
    fn diagnosis_reads_status_words_not_digits_in_names() {
        let generic = |text: &str| object_store::Error::Generic {
            store: "S3",
            source: text.to_string().into(),
        };
        let refused = generic(
            "Error performing PUT http://127.0.0.1:41403/lake/t/.meshd-probe-403: \
             error sending request: tcp connect error: Connection refused (os error 111)",
        );
        assert!(diagnose(&refused).starts_with("endpoint unreachable"));
        let forbidden = generic("Server returned non-2xx status code: 403 Forbidden: ");
        assert!(diagnose(&forbidden).starts_with("access denied"));
        let denied = object_store::Error::PermissionDenied {
            path: "lake/t".into(),
            source: "no".into(),
        };
        assert!(diagnose(&denied).starts_with("access denied"));
    }

    #[test]
    fn unknown_storage_keys_are_refused_and_secrets_stay_out_of_debug() {
        let err =
            ObjectStorageFactory::new(BTreeMap::from([("endpont".to_string(), "x".to_string())]))
                .unwrap_err();
        assert_eq!(err.key, "endpont");
        let factory = ObjectStorageFactory::new(BTreeMap::from([
            ("endpoint".to_string(), "http://127.0.0.1:1".to_string()),
            ("secret_access_key".to_string(), "hunter2".to_string()),
            ("allow_http".to_string(), "true".to_string()),
        ]))
        .unwrap();
        assert!(!format!("{factory:?}").contains("hunter2"));
    }

    #[tokio::test]
    async fn local_paths_use_the_local_filesystem() {
        let dir = tempfile::tempdir().unwrap();
        let storage = ObjectStorage::new(BTreeMap::new());
        let path = format!("file://{}/a/b.txt", dir.path().display());
        storage
            .write(&path, Bytes::from_static(b"hi"))
            .await
            .unwrap();
        assert!(storage.exists(&path).await.unwrap());
        let listed = storage
            .list(&format!("file://{}", dir.path().display()))
            .await
            .unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].location, path);
        assert_eq!(listed[0].bytes, 2);
    }
}
