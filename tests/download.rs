//! Downloading from a mirror, against a tiny HTTP server on 127.0.0.1 that serves the real
//! MNIST files from the shared data folder (or broken versions of them).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use gan_gpu::data::download::{self, sha256_hex};
use gan_gpu::data::{self, DataError, Dataset};

const IMAGES: &str = "train-images-idx3-ubyte.gz";
const LABELS: &str = "train-labels-idx1-ubyte.gz";

/// Gives up waiting for requests after this long, so a failing test cannot hang the suite.
const SERVER_DEADLINE: Duration = Duration::from_secs(60);

fn mnist_file(name: &str) -> Vec<u8> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/mnist");
    std::fs::read(dir.join(name)).unwrap()
}

/// An HTTP/1.1 server on a free local port that answers exactly `requests` GETs (then exits)
/// from `files` (path without the leading slash -> body), 404 for anything else.
struct Server {
    url: String,
    handle: JoinHandle<Vec<String>>,
}

impl Server {
    fn start(files: HashMap<String, Vec<u8>>, requests: usize) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        listener.set_nonblocking(true).unwrap();
        let handle = std::thread::spawn(move || {
            let deadline = Instant::now() + SERVER_DEADLINE;
            let mut requested = Vec::new();
            while requested.len() < requests && Instant::now() < deadline {
                match listener.accept() {
                    Ok((stream, _)) => requested.push(answer(stream, &files)),
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
            requested
        });
        Server { url, handle }
    }

    /// The paths requested, once all expected requests have been answered.
    fn requests(self) -> Vec<String> {
        self.handle.join().unwrap()
    }
}

fn answer(stream: TcpStream, files: &HashMap<String, Vec<u8>>) -> String {
    stream.set_nonblocking(false).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut reader = BufReader::new(stream);
    let mut request_line = String::new();
    reader.read_line(&mut request_line).unwrap();
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).unwrap() == 0 || header == "\r\n" {
            break;
        }
    }
    let path = request_line
        .split_whitespace()
        .nth(1)
        .unwrap_or("")
        .to_string();

    let (status, body) = match files.get(path.trim_start_matches('/')) {
        Some(body) => ("200 OK", body.as_slice()),
        None => ("404 Not Found", &b"not here"[..]),
    };
    let mut stream = reader.into_inner();
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nContent-Type: application/octet-stream\r\n\
         Connection: close\r\n\r\n",
        body.len()
    );
    // The client may hang up early (it has what it needs); that is not the server's problem.
    let _ = stream
        .write_all(head.as_bytes())
        .and_then(|_| stream.write_all(body));
    let _ = stream.flush();
    path
}

fn files(entries: &[(&str, Vec<u8>)]) -> HashMap<String, Vec<u8>> {
    entries
        .iter()
        .map(|(name, body)| (name.to_string(), body.clone()))
        .collect()
}

/// A URL on which nothing listens: bind a free port, then let it go.
fn dead_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    format!("http://{}/", listener.local_addr().unwrap())
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn cache() -> (tempfile::TempDir, PathBuf) {
    let root = tempfile::tempdir().unwrap();
    let cache = root.path().join("gan-gpu").join("mnist");
    (root, cache)
}

#[test]
fn downloads_the_real_mnist_files_from_a_mirror_and_verifies_their_checksums() {
    let server = Server::start(
        files(&[(IMAGES, mnist_file(IMAGES)), (LABELS, mnist_file(LABELS))]),
        2,
    );
    let (_root, cache) = cache();
    // No trailing slash: the file name is still appended as a path segment.
    let mirror = server.url.trim_end_matches('/').to_string();

    download::ensure_training_files(&cache, Dataset::Mnist, Some(&mirror), false).unwrap();
    assert_eq!(
        server.requests(),
        [format!("/{IMAGES}"), format!("/{LABELS}")]
    );
    assert_eq!(names_in(&cache), [IMAGES, LABELS]);
    for file in [Dataset::Mnist.train_images(), Dataset::Mnist.train_labels()] {
        assert_eq!(
            download::sha256_file(&cache.join(file.name)).unwrap(),
            file.sha256
        );
    }

    let set = data::load_training_set(Some(&cache), Dataset::Mnist, None, false).unwrap();
    assert_eq!(
        (set.images.count, set.images.rows, set.images.cols),
        (60_000, 28, 28)
    );
    assert_eq!(set.labels.map(|l| l.len()), Some(60_000));
}

#[test]
fn a_corrupted_file_fails_its_checksum_naming_the_file_and_both_hashes_and_leaves_nothing() {
    let mut corrupted = mnist_file(IMAGES);
    let middle = corrupted.len() / 2;
    corrupted[middle] ^= 0x01;
    let corrupted_sha = sha256_hex(&corrupted);
    let server = Server::start(files(&[(IMAGES, corrupted)]), 1);
    let url = format!("{}{IMAGES}", server.url);
    let (_root, cache) = cache();

    let err = download::ensure_training_files(&cache, Dataset::Mnist, Some(&server.url), false)
        .unwrap_err();
    server.requests();

    let DataError::DownloadFailed { file, attempts, .. } = &err else {
        panic!("expected DownloadFailed, got {err:?}");
    };
    assert_eq!(file, IMAGES);
    let published = Dataset::Mnist.train_images().sha256;
    assert!(
        matches!(&attempts[..], [DataError::Checksum { file, expected, actual, .. }]
            if file == IMAGES && expected == published && *actual == corrupted_sha),
        "{attempts:?}"
    );
    let message = err.to_string();
    for needle in [url.as_str(), published, corrupted_sha.as_str()] {
        assert!(message.contains(needle), "{message}");
    }
    assert!(
        names_in(&cache).is_empty(),
        "left behind: {:?}",
        names_in(&cache)
    );
}

#[test]
fn falls_back_to_the_next_mirror_when_one_fails() {
    let broken = Server::start(HashMap::new(), 1);
    let good = Server::start(files(&[(LABELS, mnist_file(LABELS))]), 1);
    let (_root, cache) = cache();
    std::fs::create_dir_all(&cache).unwrap();

    let mirrors = [dead_url(), broken.url.clone(), good.url.clone()];
    let labels = Dataset::Mnist.train_labels();
    let path = download::download_file(&cache, &labels, &mirrors, false).unwrap();

    assert_eq!(path, cache.join(LABELS));
    assert_eq!(broken.requests(), [format!("/{LABELS}")]);
    assert_eq!(good.requests(), [format!("/{LABELS}")]);
    assert_eq!(names_in(&cache), [LABELS]);
}

#[test]
fn lists_every_url_tried_when_all_mirrors_fail() {
    let broken = Server::start(HashMap::new(), 1);
    let dead = dead_url();
    let (_root, cache) = cache();
    std::fs::create_dir_all(&cache).unwrap();

    let broken_url = broken.url.clone();
    let mirrors = [broken_url.clone(), dead.clone()];
    let labels = Dataset::Mnist.train_labels();
    let err = download::download_file(&cache, &labels, &mirrors, false).unwrap_err();
    broken.requests();

    let message = err.to_string();
    assert!(
        message.contains(&format!("could not download {LABELS}")),
        "{message}"
    );
    assert!(
        message.contains(&format!("{}{LABELS}: HTTP status 404", broken_url)),
        "{message}"
    );
    assert!(message.contains(&format!("{dead}{LABELS}: ")), "{message}");
    assert!(message.contains("pass it with --data"), "{message}");
    assert!(names_in(&cache).is_empty());
}

#[test]
fn reports_an_html_page_served_in_place_of_the_file() {
    let page = b"<!DOCTYPE html><html><body>Please log in</body></html>".to_vec();
    let server = Server::start(files(&[(LABELS, page)]), 1);
    let (_root, cache) = cache();
    std::fs::create_dir_all(&cache).unwrap();

    let labels = Dataset::Mnist.train_labels();
    let err = download::download_file(&cache, &labels, std::slice::from_ref(&server.url), false)
        .unwrap_err();
    server.requests();
    assert!(err.to_string().contains("returned an HTML page"), "{err}");
    assert!(names_in(&cache).is_empty());
}

#[test]
fn skips_files_already_in_the_cache() {
    let (_root, cache) = cache();
    std::fs::create_dir_all(&cache).unwrap();
    std::fs::write(cache.join(IMAGES), mnist_file(IMAGES)).unwrap();
    std::fs::write(cache.join(LABELS), mnist_file(LABELS)).unwrap();

    // Nothing listens on the mirror, so any download attempt would fail.
    download::ensure_training_files(&cache, Dataset::Mnist, Some(&dead_url()), false).unwrap();
    assert_eq!(names_in(&cache), [IMAGES, LABELS]);
}

#[test]
fn downloads_again_a_cached_file_whose_checksum_no_longer_matches() {
    let (_root, cache) = cache();
    std::fs::create_dir_all(&cache).unwrap();
    std::fs::write(cache.join(IMAGES), mnist_file(IMAGES)).unwrap();
    let labels = mnist_file(LABELS);
    std::fs::write(cache.join(LABELS), &labels[..labels.len() / 2]).unwrap();

    let server = Server::start(files(&[(LABELS, labels.clone())]), 1);
    download::ensure_training_files(&cache, Dataset::Mnist, Some(&server.url), false).unwrap();
    assert_eq!(server.requests(), [format!("/{LABELS}")]);
    assert_eq!(std::fs::read(cache.join(LABELS)).unwrap(), labels);
}

#[test]
fn rejects_a_mirror_that_is_not_an_http_url() {
    let (_root, cache) = cache();
    let err = download::ensure_training_files(&cache, Dataset::Mnist, Some("/srv/mnist"), false)
        .unwrap_err();
    assert!(matches!(err, DataError::BadMirror { .. }), "{err:?}");
    assert!(err.to_string().contains("use --data"), "{err}");
}

#[test]
fn uses_the_public_mirrors_unless_one_is_given() {
    let urls = download::mirror_urls(Dataset::Mnist, None).unwrap();
    assert_eq!(
        urls,
        [
            "https://ossci-datasets.s3.amazonaws.com/mnist/",
            "https://storage.googleapis.com/cvdf-datasets/mnist/"
        ]
    );
    let fashion = download::mirror_urls(Dataset::FashionMnist, None).unwrap();
    assert_eq!(
        fashion,
        ["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"]
    );
    let given = download::mirror_urls(Dataset::Mnist, Some("http://example.org/d")).unwrap();
    assert_eq!(given, ["http://example.org/d/"]);
}
