//! Listening sockets.

use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpSocket};

/// Connections a listener queues before it accepts them (the kernel caps it at
/// `net.core.somaxconn`). Tokio's default of 128 is too few for a burst: a worker opening 300
/// connections at once to the sandbox overflowed it, and each dropped handshake came back one
/// second later, so a whole bot's first requests were answered a second late.
pub const BACKLOG: u32 = 4096;

/// Binds `addr` as `TcpListener::bind` does (address reuse on Unix), with a [`BACKLOG`]-deep
/// queue.
pub fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    #[cfg(unix)]
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_listener_takes_a_burst_of_connections_before_it_accepts() {
        let listener = listen("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = listener.local_addr().unwrap();
        // More than tokio's default queue, none accepted yet: every handshake completes.
        let mut connected = Vec::new();
        for _ in 0..300 {
            let connect = tokio::net::TcpStream::connect(addr);
            let stream = tokio::time::timeout(std::time::Duration::from_millis(500), connect)
                .await
                .expect("a handshake waited for a retransmission: the queue overflowed")
                .unwrap();
            connected.push(stream);
        }
        assert_eq!(connected.len(), 300);
    }
}
