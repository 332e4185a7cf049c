//! The tiny test image HMS's tests and benchmarks run: a static busybox `FROM scratch`, built
//! locally (no registry), whose main process exits at once on SIGTERM.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The Dockerfile of the test image.
pub const DOCKERFILE: &str = r#"FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
ENV PATH=/bin
CMD ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 3600 & wait $!; done"]
"#;

/// Where a static busybox may be (Debian's `busybox-static`).
const BUSYBOX: [&str; 2] = ["/usr/bin/busybox", "/bin/busybox"];

/// A file of a build context besides the busybox binary and the Dockerfile.
pub(super) struct ContextFile {
    /// Path relative to the context, `/`-separated.
    pub path: &'static str,
    pub content: &'static str,
    pub executable: bool,
}

/// Builds the image under `tag` with the docker CLI.
pub fn build(tag: &str) -> Result<(), String> {
    build_context(tag, DOCKERFILE, &[])
}

/// Builds `dockerfile` under `tag` from a temporary context holding busybox and `files`.
pub(super) fn build_context(tag: &str, dockerfile: &str, files: &[ContextFile]) -> Result<(), String> {
    let busybox = BUSYBOX.into_iter().find(|p| Path::new(p).exists());
    let busybox =
        busybox.ok_or("a static busybox is needed to build the test image (apt-get install busybox-static)")?;
    let dir = tempfile_dir()?;
    let result = (|| {
        std::fs::copy(busybox, dir.join("busybox")).map_err(|e| format!("copy busybox: {e}"))?;
        std::fs::write(dir.join("Dockerfile"), dockerfile).map_err(|e| format!("write Dockerfile: {e}"))?;
        files.iter().try_for_each(|f| write_file(&dir, f))?;
        docker_build(tag, &dir)
    })();
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn write_file(dir: &Path, file: &ContextFile) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(file.path);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| format!("create {}: {e}", parent.display()))?;
    }
    std::fs::write(&path, file.content).map_err(|e| format!("write {}: {e}", file.path))?;
    let mode = if file.executable { 0o755 } else { 0o644 };
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| format!("chmod {}: {e}", file.path))
}

fn docker_build(tag: &str, dir: &Path) -> Result<(), String> {
    let out = Command::new("docker")
        .args(["build", "-q", "--force-rm", "-t", tag])
        .arg(dir)
        .env("DOCKER_BUILDKIT", "0")
        .output()
        .map_err(|e| format!("cannot run docker build: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("docker build failed: {}", String::from_utf8_lossy(&out.stderr).trim()))
    }
}

/// Removes the image tag (the layers go when no tag is left).
pub fn remove(tag: &str) {
    let _ = Command::new("docker").args(["rmi", "-f", tag]).output();
}

fn tempfile_dir() -> Result<PathBuf, String> {
    let dir = std::env::temp_dir().join(format!("hms-image-{}-{}", std::process::id(), rand::random::<u32>()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    Ok(dir)
}
