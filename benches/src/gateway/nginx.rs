//! nginx as the reverse-proxy baseline: an nginx.conf written to a
//! scratch directory (`least_conn` over the upstreams, keep-alive to them,
//! `proxy_buffering off` so streams flow through), and nginx run in the
//! foreground (`daemon off`) as a child process, killed on drop.

use std::fmt::Write as _;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::procinfo;

/// The nginx binary: `nginx` on `PATH`, else `/usr/sbin/nginx`.
pub fn find() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("nginx"))
            .find(|p| p.is_file())
    });
    on_path.or_else(|| Some(PathBuf::from("/usr/sbin/nginx")).filter(|p| p.is_file()))
}

/// The configuration: listen on `listen`, proxy to `upstreams`.
/// `workers` is nginx's `worker_processes` (`auto` or a number).
pub fn config(listen: SocketAddr, upstreams: &[SocketAddr], workers: &str, dir: &Path) -> String {
    let d = dir.display();
    let mut servers = String::new();
    for u in upstreams {
        let _ = writeln!(servers, "        server {u};");
    }
    format!(
        "daemon off;
master_process on;
worker_processes {workers};
error_log {d}/error.log warn;
pid {d}/nginx.pid;
events {{ worker_connections 8192; }}
http {{
    access_log off;
    client_body_temp_path {d}/client_body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    keepalive_requests 1000000;
    keepalive_timeout 60s;
    upstream fake {{
        least_conn;
{servers}        keepalive 64;
        keepalive_requests 1000000;
    }}
    server {{
        listen {listen} reuseport;
        location / {{
            proxy_pass http://fake;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
            proxy_buffering off;
        }}
    }}
}}
"
    )
}

/// A running nginx, killed (and reaped) on drop.
pub struct Nginx {
    child: Child,
    addr: SocketAddr,
}

impl Nginx {
    /// Writes `dir/nginx.conf`, starts nginx on a free port and waits (up
    /// to 5 s) until it accepts connections.
    pub fn start(
        bin: &Path,
        upstreams: &[SocketAddr],
        workers: &str,
        dir: &Path,
    ) -> io::Result<Nginx> {
        let addr = SocketAddr::from(([127, 0, 0, 1], procinfo::free_port()?));
        let conf = dir.join("nginx.conf");
        std::fs::write(&conf, config(addr, upstreams, workers, dir))?;
        let child = Command::new(bin)
            .arg("-p")
            .arg(dir)
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()?;
        let mut nginx = Nginx { child, addr };
        if let Err(e) = procinfo::wait_listening(addr, Duration::from_secs(5)) {
            let log = std::fs::read_to_string(dir.join("error.log")).unwrap_or_default();
            nginx.kill();
            return Err(io::Error::new(
                e.kind(),
                format!("nginx did not start: {e}\n{log}"),
            ));
        }
        Ok(nginx)
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The master's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM (nginx's fast shutdown: the master stops its workers),
    /// then, after 3 s, SIGKILL to the master and the workers left.
    fn kill(&mut self) {
        let pid = self.child.id();
        let workers = procinfo::children(pid);
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(pid.to_string())
            .status();
        let deadline = std::time::Instant::now() + Duration::from_secs(3);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        for w in workers {
            let _ = Command::new("kill")
                .arg("-KILL")
                .arg(w.to_string())
                .status();
        }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        self.kill();
    }
}
