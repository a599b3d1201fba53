//! Reading IDX files: the good spellings and encodings, and every broken file a bad download
//! or a wrong path produces. Each fixture is the smallest file that shows the case.

use std::io::Write;
use std::path::{Path, PathBuf};

use flate2::Compression;
use flate2::write::GzEncoder;
use gan_gpu::data::{self, DataError, Dataset, IdxKind, read_images, read_labels};

const SIDE: u32 = 28;

/// An IDX images file whose header claims `count` images of `rows x cols`, followed by
/// `stored` such images with a recognisable pixel pattern.
fn images_idx(magic: u32, count: u32, rows: u32, cols: u32, stored: usize) -> Vec<u8> {
    let mut bytes = Vec::new();
    for word in [magic, count, rows, cols] {
        bytes.extend_from_slice(&word.to_be_bytes());
    }
    let len = stored * rows as usize * cols as usize;
    bytes.extend((0..len).map(|i| (i * 7 % 256) as u8));
    bytes
}

fn mnist_images(count: u32) -> Vec<u8> {
    images_idx(0x803, count, SIDE, SIDE, count as usize)
}

fn labels_idx(count: u32, labels: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::new();
    bytes.extend_from_slice(&0x801u32.to_be_bytes());
    bytes.extend_from_slice(&count.to_be_bytes());
    bytes.extend_from_slice(labels);
    bytes
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

fn temp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

#[test]
fn reads_raw_images_and_labels() {
    let dir = temp();
    let images = read_images(write(
        dir.path(),
        "train-images-idx3-ubyte",
        &mnist_images(3),
    ))
    .unwrap();
    assert_eq!((images.count, images.rows, images.cols), (3, 28, 28));
    assert_eq!(images.pixels.len(), 3 * 784);
    assert_eq!(images.pixels[..4], [0, 7, 14, 21]);

    let labels = read_labels(write(dir.path(), "l", &labels_idx(3, &[0, 9, 4]))).unwrap();
    assert_eq!(labels, [0, 9, 4]);
}

#[test]
fn reads_gzipped_images_and_labels() {
    let dir = temp();
    let raw = mnist_images(2);
    let path = write(dir.path(), "train-images-idx3-ubyte.gz", &gzip(&raw));
    let images = read_images(path).unwrap();
    assert_eq!(images.count, 2);
    assert_eq!(images.pixels, raw[16..]);

    let labels = write(dir.path(), "labels.gz", &gzip(&labels_idx(2, &[5, 3])));
    assert_eq!(read_labels(labels).unwrap(), [5, 3]);
}

#[test]
fn reads_gzip_data_under_a_raw_name() {
    let dir = temp();
    let path = write(
        dir.path(),
        "train-images-idx3-ubyte",
        &gzip(&mnist_images(4)),
    );
    assert_eq!(read_images(path).unwrap().count, 4);
}

#[test]
fn finds_and_loads_files_under_dotted_names() {
    let dir = temp();
    write(
        dir.path(),
        "train-images.idx3-ubyte.gz",
        &gzip(&mnist_images(2)),
    );
    write(
        dir.path(),
        "train-labels.idx1-ubyte",
        &labels_idx(2, &[1, 2]),
    );

    let files = data::find_files(dir.path(), Dataset::Mnist).unwrap();
    assert!(files.images.ends_with("train-images.idx3-ubyte.gz"));
    assert!(
        files
            .labels
            .as_ref()
            .unwrap()
            .ends_with("train-labels.idx1-ubyte")
    );

    let set = data::load_training_set(Some(dir.path()), Dataset::Mnist, None, false).unwrap();
    assert_eq!(set.images.count, 2);
    assert_eq!(set.labels.as_deref(), Some(&[1u8, 2][..]));
    assert_eq!(set.source, files.images);
}

#[test]
fn trains_without_labels_when_there_is_no_labels_file() {
    let dir = temp();
    write(
        dir.path(),
        "train-images-idx3-ubyte.gz",
        &gzip(&mnist_images(3)),
    );
    let set =
        data::load_training_set(Some(dir.path()), Dataset::FashionMnist, None, false).unwrap();
    assert_eq!(set.images.count, 3);
    assert!(set.labels.is_none());
}

#[test]
fn missing_files_error_lists_every_name_looked_for_and_downloads_nothing() {
    let dir = temp();
    let err = data::load_training_set(
        Some(dir.path()),
        Dataset::Mnist,
        Some("http://127.0.0.1:9/"),
        false,
    )
    .unwrap_err();
    assert!(matches!(err, DataError::MissingFiles { .. }), "{err:?}");
    let message = err.to_string();
    for name in [
        "train-images-idx3-ubyte",
        "train-images-idx3-ubyte.gz",
        "train-images.idx3-ubyte",
        "train-images.idx3-ubyte.gz",
    ] {
        assert!(message.contains(name), "{message}");
    }
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn rejects_a_data_directory_that_does_not_exist() {
    let dir = temp();
    let missing = dir.path().join("nope");
    let err = data::load_training_set(Some(&missing), Dataset::Mnist, None, false).unwrap_err();
    assert!(matches!(err, DataError::NoSuchDir { .. }), "{err:?}");
    assert!(err.to_string().contains("nope"));
}

#[test]
fn rejects_an_html_page_saved_under_the_gz_name() {
    let dir = temp();
    let page = b"<!DOCTYPE html>\n<html><head><title>404 Not Found</title></head></html>\n";
    let path = write(dir.path(), "train-images-idx3-ubyte.gz", page);
    let err = read_images(&path).unwrap_err();
    assert!(matches!(err, DataError::HtmlPage { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains("train-images-idx3-ubyte.gz"), "{message}");
    assert!(
        message.contains("HTML page") && message.contains("failed download"),
        "{message}"
    );

    let xml = b"  <?xml version=\"1.0\"?><Error><Code>AccessDenied</Code></Error>";
    let path = write(dir.path(), "train-labels-idx1-ubyte", xml);
    assert!(matches!(read_labels(path), Err(DataError::HtmlPage { .. })));
}

#[test]
fn rejects_truncated_gzip() {
    let dir = temp();
    let gz = gzip(&mnist_images(20));
    let path = write(
        dir.path(),
        "train-images-idx3-ubyte.gz",
        &gz[..gz.len() / 2],
    );
    let err = read_images(&path).unwrap_err();
    assert!(matches!(err, DataError::TruncatedGzip { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains("train-images-idx3-ubyte.gz"), "{message}");
    assert!(message.contains("ends early"), "{message}");
}

#[test]
fn rejects_a_header_that_promises_more_images_than_the_data_holds() {
    let dir = temp();
    let path = write(dir.path(), "images", &images_idx(0x803, 3, SIDE, SIDE, 2));
    let err = read_images(&path).unwrap_err();
    assert!(
        matches!(
            err,
            DataError::CountMismatch {
                promised: 3,
                holds: 2,
                stray_bytes: 0,
                ..
            }
        ),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(
        message.contains("header promises 3 images, data holds 2"),
        "{message}"
    );
    assert!(message.contains("images"), "{message}");
}

#[test]
fn rejects_data_that_ends_inside_an_image() {
    let dir = temp();
    let mut bytes = mnist_images(2);
    bytes.truncate(bytes.len() - 100);
    let err = read_images(write(dir.path(), "images", &bytes)).unwrap_err();
    assert!(
        err.to_string()
            .contains("header promises 2 images, data holds 1 and 684 stray byte(s)"),
        "{err}"
    );
}

#[test]
fn rejects_a_header_that_promises_more_labels_than_the_data_holds() {
    let dir = temp();
    let err = read_labels(write(dir.path(), "labels", &labels_idx(4, &[1, 2, 3]))).unwrap_err();
    assert!(
        err.to_string()
            .contains("header promises 4 labels, data holds 3"),
        "{err}"
    );
}

#[test]
fn rejects_wrong_magic_and_names_the_expected_one() {
    let dir = temp();
    let path = write(
        dir.path(),
        "images",
        &images_idx(0x1234_5678, 1, SIDE, SIDE, 1),
    );
    let err = read_images(&path).unwrap_err();
    assert!(
        matches!(
            err,
            DataError::BadMagic {
                kind: IdxKind::Images,
                found: 0x1234_5678,
                ..
            }
        ),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(
        message.contains("0x00000803") && message.contains("2051"),
        "{message}"
    );
    assert!(message.contains("0x12345678"), "{message}");

    let err = read_labels(write(
        dir.path(),
        "labels",
        &[0xde, 0xad, 0xbe, 0xef, 0, 0, 0, 0],
    ));
    let message = err.unwrap_err().to_string();
    assert!(
        message.contains("0x00000801") && message.contains("2049"),
        "{message}"
    );
}

#[test]
fn rejects_wrong_dimension_count() {
    let dir = temp();
    let mut bytes = images_idx(0x804, 1, SIDE, SIDE, 1);
    bytes.extend_from_slice(&[0; 4]);
    let err = read_images(write(dir.path(), "images", &bytes)).unwrap_err();
    assert!(
        matches!(err, DataError::WrongDimensions { found: 0x804, .. }),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(message.contains("declares 4 dimension(s)"), "{message}");
    assert!(
        message.contains("has 3") && message.contains("0x00000803"),
        "{message}"
    );
}

#[test]
fn rejects_a_labels_file_given_as_images() {
    let dir = temp();
    let path = write(
        dir.path(),
        "train-labels-idx1-ubyte",
        &labels_idx(2, &[1, 2]),
    );
    let err = read_images(path).unwrap_err();
    assert!(
        err.to_string().contains("this looks like a labels file"),
        "{err}"
    );
}

#[test]
fn rejects_images_that_are_not_28x28() {
    let dir = temp();
    let path = write(dir.path(), "images", &images_idx(0x803, 2, 27, 28, 2));
    let err = read_images(path).unwrap_err();
    assert!(
        matches!(
            err,
            DataError::ImageSize {
                rows: 27,
                cols: 28,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .contains("images are 27x28 pixels, expected 28x28"),
        "{err}"
    );
}

#[test]
fn rejects_a_header_cut_short() {
    let dir = temp();
    let err = read_images(write(dir.path(), "images", &mnist_images(1)[..10])).unwrap_err();
    assert!(
        matches!(
            err,
            DataError::ShortHeader {
                len: 10,
                needed: 16,
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn rejects_an_empty_file() {
    let dir = temp();
    let err = read_images(write(dir.path(), "images", &[])).unwrap_err();
    assert!(matches!(err, DataError::EmptyFile { .. }), "{err:?}");
}

#[test]
fn rejects_a_git_lfs_pointer() {
    let dir = temp();
    let pointer = b"version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 9912422\n";
    let err = read_images(write(dir.path(), "train-images-idx3-ubyte.gz", pointer)).unwrap_err();
    assert!(err.to_string().contains("git lfs pull"), "{err}");
}

#[test]
fn rejects_label_10() {
    let dir = temp();
    let path = write(dir.path(), "labels", &labels_idx(4, &[3, 10, 9, 12]));
    let err = read_labels(path).unwrap_err();
    assert!(
        matches!(
            err,
            DataError::LabelOutOfRange {
                index: 1,
                value: 10,
                bad: 2,
                count: 4,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .contains("label at index 1 is 10, expected 0-9"),
        "{err}"
    );
}

#[test]
fn rejects_labels_and_images_that_disagree_in_count() {
    let dir = temp();
    write(
        dir.path(),
        "train-images-idx3-ubyte.gz",
        &gzip(&mnist_images(3)),
    );
    write(
        dir.path(),
        "train-labels-idx1-ubyte.gz",
        &gzip(&labels_idx(2, &[1, 2])),
    );
    let err = data::load_training_set(Some(dir.path()), Dataset::Mnist, None, false).unwrap_err();
    assert!(
        matches!(
            err,
            DataError::LabelCount {
                images: 3,
                labels: 2,
                ..
            }
        ),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(
        message.contains("3 images") && message.contains("2 labels"),
        "{message}"
    );
}

#[test]
fn validates_labels_when_present_even_though_training_does_not_need_them() {
    let dir = temp();
    write(
        dir.path(),
        "train-images-idx3-ubyte.gz",
        &gzip(&mnist_images(2)),
    );
    write(
        dir.path(),
        "train-labels-idx1-ubyte.gz",
        b"<html>oops</html>",
    );
    let err = data::load_training_set(Some(dir.path()), Dataset::Mnist, None, false).unwrap_err();
    assert!(matches!(err, DataError::HtmlPage { .. }), "{err:?}");
}

/// The real MNIST files, as shipped in the shared data folder.
fn mnist_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/mnist")
}

fn digit_counts(labels: &[u8]) -> [usize; 10] {
    let mut counts = [0; 10];
    labels.iter().for_each(|&l| counts[l as usize] += 1);
    counts
}

#[test]
fn reads_the_real_mnist_training_set_with_its_published_digit_counts() {
    let set = data::load_training_set(Some(&mnist_dir()), Dataset::Mnist, None, false).unwrap();
    let images = &set.images;
    assert_eq!((images.count, images.rows, images.cols), (60_000, 28, 28));
    assert_eq!(images.pixels.len(), 60_000 * 784);
    assert_eq!(images.pixels.iter().copied().max(), Some(255));

    let labels = set.labels.expect("the shared folder has the labels");
    let published = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949];
    assert_eq!(digit_counts(&labels), published);
}

#[test]
fn reads_the_real_mnist_test_set_with_its_published_digit_counts() {
    let images = read_images(mnist_dir().join("t10k-images-idx3-ubyte.gz")).unwrap();
    assert_eq!((images.count, images.rows, images.cols), (10_000, 28, 28));
    let labels = read_labels(mnist_dir().join("t10k-labels-idx1-ubyte.gz")).unwrap();
    let published = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009];
    assert_eq!(digit_counts(&labels), published);
}
