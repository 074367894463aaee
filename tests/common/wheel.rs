//! Wheels made or changed by tests: a valid wheel (RECORD right) with other contents.

use std::fs;
use std::io::{Read, Write};
use std::path::Path;

/// Rewrites the wheel `from` to `to` with its members (name, bytes) changed by `change`,
/// RECORD made right again, every member stored.
pub fn rewrite_wheel(from: &Path, to: &Path, change: impl FnOnce(&mut Vec<(String, Vec<u8>)>)) {
    let mut zip = zip::ZipArchive::new(fs::File::open(from).unwrap()).unwrap();
    let mut members = Vec::new();
    for index in 0..zip.len() {
        let mut entry = zip.by_index(index).unwrap();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).unwrap();
        members.push((entry.name().unwrap().to_string(), data));
    }
    change(&mut members);
    let record_name = members
        .iter()
        .map(|(name, _)| name.clone())
        .find(|name| name.ends_with(".dist-info/RECORD"))
        .unwrap();
    let mut record = String::new();
    for (name, data) in &members {
        if *name != record_name {
            record.push_str(&format!(
                "{name},sha256={},{}\n",
                record_digest(data),
                data.len()
            ));
        }
    }
    record.push_str(&format!("{record_name},,\n"));
    fs::create_dir_all(to.parent().unwrap()).unwrap();
    let mut writer = zip::ZipWriter::new(fs::File::create(to).unwrap());
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Stored)
        .unix_permissions(0o644);
    for (name, data) in &members {
        writer.start_file(name.as_str(), options).unwrap();
        if *name == record_name {
            writer.write_all(record.as_bytes()).unwrap();
        } else {
            writer.write_all(data).unwrap();
        }
    }
    writer.finish().unwrap();
}

/// RECORD's digest of `data`: urlsafe base64 of its sha256, without padding.
pub fn record_digest(data: &[u8]) -> String {
    let hex = wasm_build_packaging::cache::sha256_bytes(data);
    let bytes: Vec<u8> = (0..32)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

/// Rewrites the wheel `from` to `to` with the first byte of `member` changed (its case
/// flipped) and RECORD made right: a valid wheel that differs in that one member.
pub fn one_byte_changed(from: &Path, to: &Path, member: &str) {
    rewrite_wheel(from, to, |members| {
        let (_, data) = members
            .iter_mut()
            .find(|(name, _)| name == member)
            .unwrap_or_else(|| panic!("{member} is not in {}", from.display()));
        data[0] ^= 0x20;
    });
}
