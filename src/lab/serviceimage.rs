//! The service image: the test image's static busybox `FROM scratch` running busybox `httpd`, a
//! service whose response time really depends on CPU and load, for response-time probes and the
//! analysis experiments.
//!
//! - `GET /index.html` ([`STATIC_PATH`]): a 3-byte static page, what probes hit cheaply at scale;
//! - `GET /cgi-bin/work?n=N` ([`WORK_PATH`]): a CGI shell script that runs a busy loop of `N`
//!   iterations, then answers `200` with `ok n=N`. Without `n` it runs `$WORK` iterations (the
//!   container's environment, default [`DEFAULT_WORK`]: busybox `httpd` passes its own
//!   environment to CGI scripts); a malformed `n` (not 0–99,999,999) answers `400`. With
//!   `DEPENDS` set (space-separated URLs, e.g. another service's work path), each is fetched
//!   first (busybox `wget` under `timeout 5`: its own `-T` crashes in Debian's static busybox 1.35) and a failure answers `502`: a dependent's response time
//!   includes its dependencies', as behind a real service call (the `dependency_slow` fault).
//!
//! Cost, measured with `hms bench service` on the project's 2-core machine (busybox 1.35,
//! Docker 20.10, cgroup v1; table in `docs/benchmarks.md`, "Service image"): about **2.2 ms of
//! CPU per 1,000 iterations**, on top of ~2.4 ms per CGI request (httpd's fork, the script's exec)
//! and ~0.6 ms per static page. The default `WORK=1000` costs ~4.5 ms of CPU and answers in
//! 6–8 ms (p50) in an idle container; `WORK=5000` in 15–18 ms. A busy loop inside a container
//! limited to `--cpus 0.5` makes the default 2.3–3.9 × slower (CFS throttling).
//!
//! The main process is `sh` with a `trap` that kills `httpd` and exits 0, so `docker stop`
//! returns at once instead of waiting 10 s for a PID 1 that ignores SIGTERM. Remove the image
//! with [`remove`].

use super::testimage::{ContextFile, build_context};

pub use super::testimage::remove;

/// The port `httpd` listens on inside the container.
pub const SERVICE_PORT: u16 = 8080;

/// The static page: a few bytes, no CGI.
pub const STATIC_PATH: &str = "/index.html";

/// The CGI endpoint whose CPU cost per request is `?n=` (or `$WORK`) loop iterations.
pub const WORK_PATH: &str = "/cgi-bin/work";

/// The environment variable of the URLs a [`WORK_PATH`] request fetches first.
pub const DEPENDS_ENV: &str = "DEPENDS";

/// Loop iterations of [`WORK_PATH`] without `?n=` when `WORK` is not set at `docker run`.
pub const DEFAULT_WORK: u32 = 1000;

/// The Dockerfile of the service image.
pub const SERVICE_DOCKERFILE: &str = r#"FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
COPY www /www
ENV PATH=/bin WORK=1000
EXPOSE 8080
CMD ["sh", "-c", "trap 'kill $pid 2>/dev/null; exit 0' TERM INT; httpd -f -p 8080 -h /www & pid=$!; wait $pid"]
"#;

/// The static page served at [`STATIC_PATH`].
pub const INDEX_HTML: &str = "ok\n";

/// The CGI script served at [`WORK_PATH`]: `n` from the query string, else `$WORK`.
pub const WORK_CGI: &str = r#"#!/bin/sh
# GET /cgi-bin/work?n=N: a busy loop of N iterations, then "ok n=N"; without n, $WORK.
set -f
n=${WORK:-1000}
IFS='&'
for kv in $QUERY_STRING; do
	case $kv in n=*) n=${kv#n=} ;; esac
done
case $n in
'' | *[!0-9]* | ?????????*)
	printf 'HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\n\r\nn must be 0 to 99999999\n'
	exit 0
	;;
esac
unset IFS
for dep in $DEPENDS; do
	if ! timeout 5 wget -q -O /dev/null "$dep"; then
		printf 'HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/plain\r\n\r\ndependency %s failed\n' "$dep"
		exit 0
	fi
done
i=0
while [ $i -lt $n ]; do i=$((i + 1)); done
printf 'Content-Type: text/plain\r\n\r\nok n=%s\n' "$n"
"#;

/// Builds the service image under `tag` with the docker CLI, like [`super::testimage::build`].
pub fn build_service(tag: &str) -> Result<(), String> {
    let files = [
        ContextFile { path: "www/index.html", content: INDEX_HTML, executable: false },
        ContextFile { path: "www/cgi-bin/work", content: WORK_CGI, executable: true },
    ];
    build_context(tag, SERVICE_DOCKERFILE, &files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dockerfile_and_script_agree_with_the_constants() {
        assert!(SERVICE_DOCKERFILE.contains(&format!("WORK={DEFAULT_WORK}")));
        assert!(WORK_CGI.contains(&format!("n=${{WORK:-{DEFAULT_WORK}}}")));
        assert!(SERVICE_DOCKERFILE.contains(&format!("httpd -f -p {SERVICE_PORT} -h /www")));
        assert!(SERVICE_DOCKERFILE.contains(&format!("EXPOSE {SERVICE_PORT}")));
        assert_eq!(WORK_PATH, "/cgi-bin/work", "the script is copied to www/cgi-bin/work");
        assert!(WORK_CGI.contains(&format!("for dep in ${DEPENDS_ENV}; do")));
        assert_eq!(STATIC_PATH, "/index.html", "the page is copied to www/index.html");
    }
}
