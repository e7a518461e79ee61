//! Test helper: speaks systemd's readiness protocol. `notify_ready [FIFO [MESSAGE...]]` sends
//! `STATUS=warming up` to `$NOTIFY_SOCKET`, waits for a line on FIFO (if given), sends
//! `READY=1`, then each MESSAGE as a datagram of its own, then sleeps until killed.
//! `notify_ready --send MESSAGE` sends MESSAGE and exits at once (a sender that is gone when its
//! message is read). Not an example to copy.
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};

fn main() {
    let Some(target) = std::env::var_os("NOTIFY_SOCKET") else {
        eprintln!("notify_ready: NOTIFY_SOCKET is not set");
        std::process::exit(2);
    };
    let target = target.to_string_lossy().into_owned();
    let address = match target.strip_prefix('@') {
        Some(name) => SocketAddr::from_abstract_name(name.as_bytes()),
        None => SocketAddr::from_pathname(&target),
    }
    .expect("NOTIFY_SOCKET address");
    let socket = UnixDatagram::unbound().expect("socket");
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let [flag, message] = &args[..]
        && flag == "--send"
    {
        socket.send_to_addr(message.as_bytes(), &address).expect("send");
        return;
    }
    socket.send_to_addr(b"STATUS=warming up", &address).expect("send STATUS");
    if let Some(fifo) = std::env::args_os().nth(1) {
        let mut line = String::new();
        let fifo = std::fs::File::open(fifo).expect("open FIFO");
        std::io::BufRead::read_line(&mut std::io::BufReader::new(fifo), &mut line)
            .expect("read FIFO");
    }
    socket.send_to_addr(b"READY=1\nSTATUS=serving", &address).expect("send READY");
    for message in std::env::args_os().skip(2) {
        socket.send_to_addr(message.as_encoded_bytes(), &address).expect("send MESSAGE");
    }
    loop {
        std::thread::park();
    }
}
