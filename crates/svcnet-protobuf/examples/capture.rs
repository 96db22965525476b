//! Records request bodies sent by a real kubectl, for test fixtures.
//!
//! Usage: `cargo run -p svcnet-protobuf --example capture -- OUT_DIR`
//! then point kubectl at the printed address, for example
//! `kubectl --server http://127.0.0.1:PORT create service nodeport web --tcp=80:8080`.
//! Every POST body is written to `OUT_DIR/NNN.bin` (with `NNN.txt` holding the
//! request line and content type). Protobuf bodies are answered with the
//! decoded JSON so kubectl completes normally. Stop it with Ctrl-C.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

const VERSION: &str = r#"{"major":"1","minor":"33","gitVersion":"v1.33.0"}"#;

struct Request {
    line: String,
    content_type: String,
    body: Vec<u8>,
}

fn main() -> std::io::Result<()> {
    let out = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| ".".into()));
    std::fs::create_dir_all(&out)?;
    let listener = TcpListener::bind("127.0.0.1:0")?;
    println!("listening on http://{}", listener.local_addr()?);
    let counter = Arc::new(AtomicUsize::new(0));
    for stream in listener.incoming() {
        let (out, counter) = (out.clone(), counter.clone());
        std::thread::spawn(move || {
            if let Err(e) = serve(stream?, &out, &counter) {
                eprintln!("connection error: {e}");
            }
            std::io::Result::Ok(())
        });
    }
    Ok(())
}

/// Serves requests on one keep-alive connection until the client closes it.
fn serve(stream: TcpStream, out: &Path, counter: &AtomicUsize) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut writer = stream;
    while let Some(request) = read_request(&mut reader)? {
        println!("{} ({})", request.line, request.content_type);
        let (status, body) = respond(&request, out, counter)?;
        write!(
            writer,
            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )?;
        writer.flush()?;
    }
    Ok(())
}

fn read_request(reader: &mut impl BufRead) -> std::io::Result<Option<Request>> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    let (mut length, mut content_type) = (0usize, String::new());
    loop {
        let mut header = String::new();
        reader.read_line(&mut header)?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        let (name, value) = header.split_once(':').unwrap_or((header, ""));
        match name.to_ascii_lowercase().as_str() {
            "content-length" => length = value.trim().parse().unwrap_or(0),
            "content-type" => content_type = value.trim().to_owned(),
            _ => {}
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    let line = line.trim_end().to_owned();
    Ok(Some(Request {
        line,
        content_type,
        body,
    }))
}

fn respond(request: &Request, out: &Path, counter: &AtomicUsize) -> std::io::Result<(&'static str, String)> {
    if request.line.starts_with("GET /version") {
        return Ok(("200 OK", VERSION.to_owned()));
    }
    if !request.line.starts_with("POST ") {
        return Ok(("404 Not Found", r#"{"kind":"Status","code":404}"#.to_owned()));
    }
    let n = counter.fetch_add(1, Ordering::SeqCst);
    std::fs::write(out.join(format!("{n:03}.bin")), &request.body)?;
    let note = format!("{}\n{}\n", request.line, request.content_type);
    std::fs::write(out.join(format!("{n:03}.txt")), note)?;
    Ok(("201 Created", echo(request)))
}

/// Answers with the created object so kubectl prints its usual message.
fn echo(request: &Request) -> String {
    if !request.content_type.starts_with(svcnet_protobuf::CONTENT_TYPE) {
        return String::from_utf8_lossy(&request.body).into_owned();
    }
    match svcnet_protobuf::decode_object(&request.body) {
        Ok(object) => object.to_string(),
        Err(e) => {
            eprintln!("decode failed: {e}");
            r#"{"kind":"Status","code":500}"#.to_owned()
        }
    }
}
