//! What the MTA sends (SMFIC_*). Fields borrow from the caller when encoding and from
//! the packet when decoding; octet strings, since what a client sends need not be UTF-8.

use std::net::{IpAddr, SocketAddr};

use super::fields::Fields;
use super::flags::Negotiation;
use super::{DecodeError, Packet, PacketWriter};

/// Where the SMTP client connected from (the CONNECT packet's family and address).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnectAddress<'a> {
    /// SMFIA_UNKNOWN: no address.
    Unknown,
    /// SMFIA_INET or SMFIA_INET6: an IP address and port.
    Ip(SocketAddr),
    /// SMFIA_UNIX: a Unix socket's path.
    Unix(&'a [u8]),
}

/// One command from the MTA to the filter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command<'a> {
    /// SMFIC_OPTNEG 'O': the MTA's offer.
    Negotiate(Negotiation),
    /// SMFIC_MACRO 'D': macros for the command with code `command`.
    Macros {
        /// The code of the command they belong to.
        command: u8,
        /// Names and values.
        pairs: Vec<(&'a [u8], &'a [u8])>,
    },
    /// SMFIC_CONNECT 'C'.
    Connect {
        /// The client's host name.
        hostname: &'a [u8],
        /// The client's address.
        address: ConnectAddress<'a>,
    },
    /// SMFIC_HELO 'H': the HELO/EHLO argument.
    Helo(&'a [u8]),
    /// SMFIC_MAIL 'M': the sender in angle brackets, then ESMTP parameters.
    Mail(Vec<&'a [u8]>),
    /// SMFIC_RCPT 'R': the recipient in angle brackets, then ESMTP parameters.
    Rcpt(Vec<&'a [u8]>),
    /// SMFIC_DATA 'T'.
    Data,
    /// SMFIC_HEADER 'L': one header field, its value in wire form (folded lines
    /// separated by LF).
    Header {
        /// The field's name.
        name: &'a [u8],
        /// The field's value.
        value: &'a [u8],
    },
    /// SMFIC_EOH 'N'.
    EndOfHeaders,
    /// SMFIC_BODY 'B': a chunk of the body, at most
    /// [`MAX_BODY_CHUNK`](super::MAX_BODY_CHUNK) octets.
    Body(&'a [u8]),
    /// SMFIC_BODYEOB 'E': the end of the message.
    EndOfBody,
    /// SMFIC_ABORT 'A': forget the current message.
    Abort,
    /// SMFIC_QUIT 'Q': close the connection.
    Quit,
    /// SMFIC_UNKNOWN 'U': an SMTP command the MTA did not know.
    Unknown(&'a [u8]),
}

/// SMFIA_* address families.
const FAMILY_UNKNOWN: u8 = b'U';
const FAMILY_UNIX: u8 = b'L';
const FAMILY_INET: u8 = b'4';
const FAMILY_INET6: u8 = b'6';

impl<'a> Command<'a> {
    /// Appends this command's packet to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Command::Negotiate(offer) => offer.encode(out),
            Command::Macros { command, pairs } => {
                let mut packet = PacketWriter::new(out, b'D');
                packet.byte(*command);
                for (name, value) in pairs {
                    packet.cstr(name).cstr(value);
                }
            }
            Command::Connect { hostname, address } => {
                let mut packet = PacketWriter::new(out, b'C');
                packet.cstr(hostname);
                match address {
                    ConnectAddress::Unknown => {
                        packet.byte(FAMILY_UNKNOWN);
                    }
                    ConnectAddress::Ip(addr) => {
                        let family = if addr.is_ipv4() {
                            FAMILY_INET
                        } else {
                            FAMILY_INET6
                        };
                        packet
                            .byte(family)
                            .u16(addr.port())
                            .cstr(addr.ip().to_string().as_bytes());
                    }
                    ConnectAddress::Unix(path) => {
                        packet.byte(FAMILY_UNIX).u16(0).cstr(path);
                    }
                }
            }
            Command::Helo(name) => {
                PacketWriter::new(out, b'H').cstr(name);
            }
            Command::Mail(args) => encode_args(out, b'M', args),
            Command::Rcpt(args) => encode_args(out, b'R', args),
            Command::Data => {
                PacketWriter::new(out, b'T');
            }
            Command::Header { name, value } => {
                PacketWriter::new(out, b'L').cstr(name).cstr(value);
            }
            Command::EndOfHeaders => {
                PacketWriter::new(out, b'N');
            }
            Command::Body(chunk) => {
                PacketWriter::new(out, b'B').raw(chunk);
            }
            Command::EndOfBody => {
                PacketWriter::new(out, b'E');
            }
            Command::Abort => {
                PacketWriter::new(out, b'A');
            }
            Command::Quit => {
                PacketWriter::new(out, b'Q');
            }
            Command::Unknown(line) => {
                PacketWriter::new(out, b'U').cstr(line);
            }
        }
    }

    /// Reads a command from its packet (the filter's side of the protocol).
    pub fn decode(packet: Packet<'a>) -> Result<Command<'a>, DecodeError> {
        let mut fields = Fields::new(packet);
        let command = match packet.code {
            b'O' => return Negotiation::decode(packet).map(Command::Negotiate),
            b'D' => {
                let command = fields.byte()?;
                let mut pairs = Vec::new();
                while !fields.is_empty() {
                    pairs.push((fields.cstr()?, fields.cstr()?));
                }
                Command::Macros { command, pairs }
            }
            b'C' => {
                let hostname = fields.cstr()?;
                let address = match fields.byte()? {
                    FAMILY_UNKNOWN => ConnectAddress::Unknown,
                    FAMILY_UNIX => {
                        fields.u16()?;
                        ConnectAddress::Unix(fields.cstr()?)
                    }
                    FAMILY_INET | FAMILY_INET6 => {
                        let port = fields.u16()?;
                        let ip: IpAddr = std::str::from_utf8(fields.cstr()?)
                            .ok()
                            .and_then(|text| text.parse().ok())
                            .ok_or_else(|| fields.bad("not an IP address"))?;
                        ConnectAddress::Ip(SocketAddr::new(ip, port))
                    }
                    _ => return Err(fields.bad("unknown address family")),
                };
                Command::Connect { hostname, address }
            }
            b'H' => Command::Helo(fields.cstr()?),
            b'M' => Command::Mail(decode_args(&mut fields)?),
            b'R' => Command::Rcpt(decode_args(&mut fields)?),
            b'T' => Command::Data,
            b'L' => Command::Header {
                name: fields.cstr()?,
                value: fields.cstr()?,
            },
            b'N' => Command::EndOfHeaders,
            b'B' => Command::Body(fields.rest()),
            b'E' => Command::EndOfBody,
            b'A' => Command::Abort,
            b'Q' => Command::Quit,
            b'U' => Command::Unknown(fields.cstr()?),
            code => return Err(DecodeError::UnknownCode(code)),
        };
        fields.end()?;
        Ok(command)
    }
}

fn encode_args(out: &mut Vec<u8>, code: u8, args: &[&[u8]]) {
    let mut packet = PacketWriter::new(out, code);
    for arg in args {
        packet.cstr(arg);
    }
}

/// The address and parameters of MAIL or RCPT: at least the address.
fn decode_args<'a>(fields: &mut Fields<'a>) -> Result<Vec<&'a [u8]>, DecodeError> {
    let mut args = vec![fields.cstr()?];
    while !fields.is_empty() {
        args.push(fields.cstr()?);
    }
    Ok(args)
}
