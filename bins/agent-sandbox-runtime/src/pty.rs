//! The pseudo-terminal of a process started with one: opening the pair, its window size, and the
//! master as an asynchronous byte stream.
//!
//! The slave is handed to the process as stdin, stdout and stderr; the daemon keeps only the
//! master. It cannot become the process's controlling terminal (that needs `setsid` and
//! `TIOCSCTTY` between fork and exec, which `unsafe_code = "forbid"` rules out), but everything
//! done through the file descriptors works: `isatty`, `tty`, `stty`, the window size, the line
//! discipline (canonical input, echo, `^D`). What does not happen is the kernel signalling a
//! foreground process group: typing `^C` sends no SIGINT and a resize no SIGWINCH, so the service
//! sends SIGWINCH itself and SIGINT goes through `SendSignal`.

use std::io;
use std::os::fd::OwnedFd;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;
use rustix::pty::OpenptFlags;
use rustix::termios::Winsize;
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// What a terminal sends for `^D`: at the start of a line, end of input for the reader.
pub const EOF: &[u8] = b"\x04";

/// A window size of `rows` × `cols`, both between 1 and 65535 (the kernel's fields are 16 bits,
/// and a zero-sized terminal makes full-screen programs divide by zero).
pub fn window_size(rows: u32, cols: u32) -> Result<Winsize, String> {
    let dimension = |value: u32, name: &str| match u16::try_from(value) {
        Ok(value) if value > 0 => Ok(value),
        _ => Err(format!("{name} must be between 1 and 65535, not {value}")),
    };
    Ok(Winsize {
        ws_row: dimension(rows, "rows")?,
        ws_col: dimension(cols, "cols")?,
        ws_xpixel: 0,
        ws_ypixel: 0,
    })
}

/// The master side of a PTY, shared by the task reading the output, the task writing the input and
/// `ResizeTTY`; closed when the last of them drops it. Reading it ends (`Ok(0)`) once every holder
/// of the slave closed it, as a pipe ends.
#[derive(Clone)]
pub struct Master(Arc<AsyncFd<OwnedFd>>);

impl Master {
    /// Opens a PTY pair with the window size `size`; returns the master and the slave. Both are
    /// close-on-exec, so no other process the daemon starts inherits them by accident.
    pub fn open(size: Winsize) -> io::Result<(Master, OwnedFd)> {
        let master =
            rustix::pty::openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC)?;
        rustix::pty::grantpt(&master)?;
        rustix::pty::unlockpt(&master)?;
        let name = rustix::pty::ptsname(&master, Vec::new())?;
        let slave = rustix::fs::open(
            name.as_c_str(),
            OFlags::RDWR | OFlags::NOCTTY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        rustix::termios::tcsetwinsize(&master, size)?;
        // Only the master's open file is non-blocking: the process sees an ordinary terminal.
        rustix::io::ioctl_fionbio(&master, true)?;
        // `AsyncFd::new` is deprecated because a generic `T` may hand out a different (or closed)
        // descriptor over time; an `OwnedFd` moved into it cannot, and `register`, its
        // replacement, is `unsafe`, which this workspace forbids.
        #[allow(deprecated)]
        let master = AsyncFd::new(master)?;
        Ok((Master(Arc::new(master)), slave))
    }

    /// Changes the window size. The kernel would send SIGWINCH to the terminal's foreground
    /// process group, but the terminal is nobody's controlling terminal: the caller signals.
    pub fn resize(&self, size: Winsize) -> io::Result<()> {
        Ok(rustix::termios::tcsetwinsize(self.0.get_ref(), size)?)
    }
}

impl AsyncRead for Master {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            let mut guard = ready!(self.0.poll_read_ready(cx))?;
            let unfilled = buf.initialize_unfilled();
            match guard.try_io(|fd| Ok(rustix::io::read(fd.get_ref(), &mut *unfilled)?)) {
                Ok(Ok(n)) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                // Linux answers EIO, not 0, once the last holder of the slave closed it.
                Ok(Err(err)) if Errno::from_io_error(&err) == Some(Errno::IO) => {
                    return Poll::Ready(Ok(()));
                }
                Ok(Err(err)) => return Poll::Ready(Err(err)),
                Err(_would_block) => {}
            }
        }
    }
}

impl AsyncWrite for Master {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        loop {
            let mut guard = ready!(self.0.poll_write_ready(cx))?;
            if let Ok(written) = guard.try_io(|fd| Ok(rustix::io::write(fd.get_ref(), buf)?)) {
                return Poll::Ready(written);
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Written bytes are in the line discipline already.
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Closing input on a terminal is a byte (EOF), not a shutdown; the master stays open for
        // the output.
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_sizes() {
        let size = window_size(24, 80).unwrap();
        assert_eq!((size.ws_row, size.ws_col), (24, 80));
        let largest = window_size(65535, 65535).unwrap();
        assert_eq!((largest.ws_row, largest.ws_col), (65535, 65535));
        assert!(window_size(0, 80).unwrap_err().contains("rows"));
        assert!(window_size(24, 0).unwrap_err().contains("cols"));
        assert!(window_size(65536, 80).unwrap_err().contains("rows"));
        assert!(window_size(24, u32::MAX).unwrap_err().contains("cols"));
    }

    #[tokio::test]
    async fn the_slave_is_a_terminal_of_the_size_set() {
        let (master, slave) = Master::open(window_size(24, 80).unwrap()).unwrap();
        assert!(rustix::termios::isatty(&slave));
        let size = rustix::termios::tcgetwinsize(&slave).unwrap();
        assert_eq!((size.ws_row, size.ws_col), (24, 80));
        master.resize(window_size(50, 132).unwrap()).unwrap();
        let size = rustix::termios::tcgetwinsize(&slave).unwrap();
        assert_eq!((size.ws_row, size.ws_col), (50, 132));
    }

    #[tokio::test]
    async fn output_ends_when_the_slave_closes() {
        use tokio::io::AsyncReadExt;
        let (mut master, slave) = Master::open(window_size(24, 80).unwrap()).unwrap();
        rustix::io::write(&slave, b"bye").unwrap();
        drop(slave);
        let mut output = Vec::new();
        master.read_to_end(&mut output).await.unwrap();
        assert_eq!(output, b"bye");
    }
}
