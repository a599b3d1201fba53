//! Fetching the published `.gz` files from public mirrors.
//!
//! Each file is streamed into a temporary file next to its destination while its SHA-256 is
//! computed; only a file whose hash matches the published one is renamed into place. So the
//! cache never holds a partial or tampered file, a failed mirror costs nothing but time, and a
//! plain-http mirror is as safe as an https one.

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use sha2::{Digest, Sha256};

use super::{DataError, DataFile, Dataset, find_one};
use crate::fsutil::AtomicFile;

/// Refuse bodies larger than this. The largest published file (Fashion-MNIST training images)
/// is 26 MB; the cap only stops a misbehaving server from filling the disk.
pub const MAX_DOWNLOAD_BYTES: u64 = 256 << 20;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// A read that stalls this long fails the mirror. No overall timeout: slow links are fine.
const READ_TIMEOUT: Duration = Duration::from_secs(60);
const CHUNK: usize = 64 * 1024;

/// The base URLs to try: just `mirror` when given, else the dataset's public mirrors. Each ends
/// in `/` so a file name can be appended.
pub fn mirror_urls(dataset: Dataset, mirror: Option<&str>) -> Result<Vec<String>, DataError> {
    let Some(mirror) = mirror else {
        return Ok(dataset.mirrors().iter().map(|m| m.to_string()).collect());
    };
    let lower = mirror.to_ascii_lowercase();
    if !(lower.starts_with("http://") || lower.starts_with("https://")) {
        return Err(DataError::BadMirror {
            url: mirror.to_string(),
        });
    }
    let base = if mirror.ends_with('/') {
        mirror.to_string()
    } else {
        format!("{mirror}/")
    };
    Ok(vec![base])
}

/// Makes sure `dir` holds the training images and labels of `dataset`, downloading whatever is
/// missing. A cached `.gz` whose checksum no longer matches is downloaded again; an unpacked
/// copy (which has no published checksum) is trusted as it is.
pub fn ensure_training_files(
    dir: &Path,
    dataset: Dataset,
    mirror: Option<&str>,
    progress: bool,
) -> Result<(), DataError> {
    let mirrors = mirror_urls(dataset, mirror)?;
    std::fs::create_dir_all(dir).map_err(|error| DataError::Io {
        path: dir.to_path_buf(),
        error,
    })?;

    for file in [dataset.train_images(), dataset.train_labels()] {
        let gz = dir.join(file.name);
        if gz.is_file() {
            let actual = sha256_file(&gz)?;
            if actual == file.sha256 {
                continue;
            }
            log::warn!(
                "{}: sha256 {actual} does not match the published {}; downloading it again",
                gz.display(),
                file.sha256
            );
        } else if let Some(existing) = find_one(dir, &file) {
            log::debug!("using {}", existing.display());
            continue;
        }
        download_file(dir, &file, &mirrors, progress)?;
    }
    Ok(())
}

/// Downloads `file` into `dir/<file.name>` from the first of `mirrors` (base URLs) that
/// delivers bytes with the published SHA-256. Returns the path written. On failure nothing is
/// left in `dir`, and the error lists every URL tried and why it failed.
pub fn download_file(
    dir: &Path,
    file: &DataFile,
    mirrors: &[String],
    progress: bool,
) -> Result<PathBuf, DataError> {
    let target = dir.join(file.name);
    let mut attempts = Vec::new();

    for base in mirrors {
        let url = format!("{base}{}", file.name);
        log::info!("downloading {url}");
        match fetch_verified(&agent(&url), &url, file, &target, progress) {
            Ok(bytes) => {
                log::info!("{}: {bytes} bytes, sha256 verified", target.display());
                return Ok(target);
            }
            Err(error) => {
                log::warn!("{error}");
                attempts.push(error);
            }
        }
    }
    Err(DataError::DownloadFailed {
        file: file.name.to_string(),
        dir: dir.to_path_buf(),
        attempts,
    })
}

fn agent(url: &str) -> ureq::Agent {
    // Proxies come from the usual environment variables, except for a mirror on this machine,
    // which a proxy elsewhere could not reach.
    let proxy = if is_loopback(url) {
        None
    } else {
        ureq::Proxy::try_from_env()
    };
    ureq::Agent::config_builder()
        .proxy(proxy)
        .timeout_connect(Some(CONNECT_TIMEOUT))
        .timeout_per_read(Some(READ_TIMEOUT))
        // The checksum is of the .gz bytes; a server that re-encoded them in transit would
        // have them decoded for us and fail the check, so ask for the bytes as stored.
        .accept_encoding("identity")
        .user_agent(concat!("gan-gpu/", env!("CARGO_PKG_VERSION")))
        .build()
        .into()
}

fn is_loopback(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split('/').next().unwrap_or_default();
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    let host = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => host.split(':').next().unwrap_or_default(),
    };
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// One attempt: stream `url` into a temporary file, hash it on the way, and rename it to
/// `target` only if the hash matches. Returns the byte count.
fn fetch_verified(
    agent: &ureq::Agent,
    url: &str,
    file: &DataFile,
    target: &Path,
    progress: bool,
) -> Result<u64, DataError> {
    let http = |message: String| DataError::Http {
        url: url.to_string(),
        message,
    };
    let mut response = agent.get(url).call().map_err(|e| http(describe_ureq(e)))?;
    let body = response.body_mut();
    let bar = progress_bar(progress, body.content_length(), file.name);
    let mut reader = body.with_config().limit(MAX_DOWNLOAD_BYTES).reader();

    // Stream, hash and store. The AtomicFile deletes its temporary file on every early return.
    let mut out = AtomicFile::create(target).map_err(|error| DataError::Io {
        path: target.to_path_buf(),
        error,
    })?;
    let mut hasher = Sha256::new();
    let mut head = Vec::new();
    let mut total = 0u64;
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                bar.abandon();
                return Err(http(format!("transfer failed after {total} bytes: {e}")));
            }
        };
        let chunk = &buf[..n];
        hasher.update(chunk);
        if head.len() < 64 {
            head.extend_from_slice(&chunk[..chunk.len().min(64 - head.len())]);
        }
        out.write_all(chunk).map_err(|error| DataError::Io {
            path: out.temp_path().to_path_buf(),
            error,
        })?;
        total += n as u64;
        bar.set_position(total);
    }
    bar.finish_and_clear();

    // Verify before the file becomes visible under its real name.
    let actual = hex(&hasher.finalize());
    if actual != file.sha256 {
        let trimmed = head.trim_ascii_start();
        if trimmed.starts_with(b"<") {
            return Err(http(format!(
                "returned an HTML page instead of {} (a proxy or login page?)",
                file.name
            )));
        }
        return Err(DataError::Checksum {
            file: file.name.to_string(),
            url: url.to_string(),
            expected: file.sha256.to_string(),
            actual,
        });
    }
    out.commit().map_err(|error| DataError::Io {
        path: target.to_path_buf(),
        error,
    })?;
    Ok(total)
}

fn describe_ureq(error: ureq::Error) -> String {
    match error {
        ureq::Error::StatusCode(code) => format!("HTTP status {code}"),
        other => other.to_string(),
    }
}

fn progress_bar(show: bool, len: Option<u64>, name: &'static str) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let (bar, template) = match len {
        Some(len) => (
            ProgressBar::new(len),
            "{msg:28} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        ),
        None => (
            ProgressBar::no_length(),
            "{msg:28} {spinner} {bytes} {bytes_per_sec}",
        ),
    };
    // The templates are constants; a typo would show as a plain bar, not an error.
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.with_message(name)
}

/// Lowercase hex SHA-256 of a file's bytes.
pub fn sha256_file(path: &Path) -> Result<String, DataError> {
    let io_err = |error| DataError::Io {
        path: path.to_path_buf(),
        error,
    };
    let mut file = std::fs::File::open(path).map_err(io_err)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; CHUNK];
    loop {
        match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => hasher.update(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io_err(e)),
        }
    }
    Ok(hex(&hasher.finalize()))
}

/// Lowercase hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
