//! PDF/A-2b: what turns printpdf's output into a file a records office can
//! keep. printpdf 0.7 knows PDF/X, not PDF/A: its XMP packet carries random
//! instance ids and no `pdfaid` schema, its output intent is a CMYK
//! printing condition while reports are drawn in RGB, and its document
//! information is not kept in step with the XMP. So the finished file is
//! given, deterministically, an XMP packet and a document
//! information dictionary that say the same thing (title, author, dates from
//! the checkpoint), an sRGB output intent, a named optional-content
//! configuration and a content-derived `/ID`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{Read as _, Write as _};
use std::sync::OnceLock;

use super::ReportError;

/// What the metadata says about a report.
pub(crate) struct Described<'a> {
    pub title: &'a str,
    /// Who stands behind the record: the checkpoint's origin.
    pub author: &'a str,
    pub subject: &'a str,
    /// The checkpoint's time, whole seconds, UTC.
    pub created: chrono::DateTime<chrono::Utc>,
    /// 32 hex digits derived from the report's content.
    pub id: &'a str,
}

fn unexpected(what: &str) -> ReportError {
    ReportError::Pdf(format!("printpdf wrote an unexpected file ({what})"))
}

/// What the finishing needs of printpdf's file: where its objects are, and
/// which is the catalog. printpdf (through lopdf) writes `%PDF-1.x`, the
/// objects uncompressed one after the other, then a cross-reference stream.
struct Written {
    /// Byte offset of each object, by number.
    offsets: BTreeMap<u32, usize>,
    /// Where the cross-reference stream starts: the objects end there.
    xref_at: usize,
    size: u32,
    root: u32,
}

/// The number after `key` in a PDF dictionary's text (`/Size 52`, `/Root 47 0 R`).
fn number_after(dict: &[u8], key: &[u8]) -> Option<usize> {
    let at = dict.windows(key.len()).position(|w| w == key)? + key.len();
    let digits: String =
        dict[at..].iter().skip_while(|b| **b == b' ').take_while(|b| b.is_ascii_digit()).map(|b| *b as char).collect();
    digits.parse().ok()
}

/// The integers of the array after `key` (`/W[1 4 2]`).
fn array_after(dict: &[u8], key: &[u8]) -> Option<Vec<usize>> {
    let at = dict.windows(key.len()).position(|w| w == key)? + key.len();
    let rest = std::str::from_utf8(&dict[at..]).ok()?.trim_start().strip_prefix('[')?;
    rest.split(']').next()?.split_whitespace().map(|n| n.parse().ok()).collect()
}

fn read_written(pdf: &[u8]) -> Result<Written, ReportError> {
    let tail = &pdf[pdf.len().saturating_sub(64)..];
    let start = tail.windows(9).rposition(|w| w == b"startxref").ok_or_else(|| unexpected("no startxref"))?;
    let xref_at: usize = std::str::from_utf8(&tail[start + 9..])
        .ok()
        .and_then(|t| t.split_whitespace().next()?.parse().ok())
        .filter(|&at| at < pdf.len())
        .ok_or_else(|| unexpected("startxref"))?;
    let stream_at = pdf[xref_at..]
        .windows(7)
        .position(|w| w == b"stream\n")
        .map(|p| xref_at + p)
        .ok_or_else(|| unexpected("no cross-reference stream"))?;
    let dict = &pdf[xref_at..stream_at];
    if !dict.windows(10).any(|w| w == b"/Type/XRef") {
        return Err(unexpected("no cross-reference stream"));
    }
    let size = number_after(dict, b"/Size").ok_or_else(|| unexpected("/Size"))?;
    let root = number_after(dict, b"/Root").ok_or_else(|| unexpected("/Root"))?;
    let length = number_after(dict, b"/Length").ok_or_else(|| unexpected("/Length"))?;
    let widths = array_after(dict, b"/W").filter(|w| w.len() == 3).ok_or_else(|| unexpected("/W"))?;
    let index = array_after(dict, b"/Index").unwrap_or_else(|| vec![0, size]);
    let data = pdf.get(stream_at + 7..stream_at + 7 + length).ok_or_else(|| unexpected("stream length"))?;
    let mut entries = Vec::new();
    if dict.windows(12).any(|w| w == b"/FlateDecode") {
        flate2::read::ZlibDecoder::new(data).read_to_end(&mut entries).map_err(|_| unexpected("xref data"))?;
    } else {
        entries = data.to_vec();
    }
    let row = widths.iter().sum::<usize>();
    let field = |bytes: &[u8]| bytes.iter().fold(0usize, |n, b| (n << 8) | usize::from(*b));
    let mut offsets = BTreeMap::new();
    let mut rows = entries.chunks_exact(row);
    for pair in index.chunks(2) {
        let [first, count] = pair else { return Err(unexpected("/Index")) };
        for number in *first..first + count {
            let entry = rows.next().ok_or_else(|| unexpected("xref rows"))?;
            let kind = if widths[0] == 0 { 1 } else { field(&entry[..widths[0]]) };
            let offset = field(&entry[widths[0]..widths[0] + widths[1]]);
            match kind {
                0 => {}
                1 => {
                    offsets.insert(u32::try_from(number).map_err(|_| unexpected("object number"))?, offset);
                }
                _ => return Err(unexpected("objects in object streams")),
            }
        }
    }
    let size = u32::try_from(size).map_err(|_| unexpected("/Size"))?;
    let root = u32::try_from(root).map_err(|_| unexpected("/Root"))?;
    Ok(Written { offsets, xref_at, size, root })
}

/// `pdf`, as printpdf wrote it, finished as PDF/A-2b and described by
/// `described`. No re-parsing: printpdf's objects are kept byte for byte
/// (a dossier is thousands of them, and parsing and re-writing them all
/// doubled the rendering time); the header gains its binary comment, the
/// catalog is written again with the metadata and the output intent, the
/// information dictionary and the XMP packet are added, and a new
/// cross-reference stream lists every object at its new place. The old
/// cross-reference stream is left out, and with it printpdf's random `/ID`.
pub(crate) fn finish(pdf: &[u8], described: &Described<'_>) -> Result<Vec<u8>, ReportError> {
    let written = read_written(pdf)?;
    let header_end = pdf.iter().position(|b| *b == b'\n').ok_or_else(|| unexpected("header"))? + 1;
    if !pdf.starts_with(b"%PDF-1.") {
        return Err(unexpected("header"));
    }
    // PDF/A-2 is based on PDF 1.7 (the file uses a cross-reference stream,
    // 1.5), and wants the header followed by a comment of four bytes above
    // 127, so that transfer tools treat the file as binary.
    const HEADER: &[u8] = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n";
    let shift = |offset: usize| offset - header_end + HEADER.len();
    let mut out = Vec::with_capacity(pdf.len() + 8192);
    out.extend_from_slice(HEADER);
    out.extend_from_slice(&pdf[header_end..written.xref_at]);
    // The old cross-reference stream lists itself; it is not copied.
    let mut offsets: BTreeMap<u32, usize> =
        written.offsets.iter().filter(|(_, at)| **at < written.xref_at).map(|(n, at)| (*n, shift(*at))).collect();

    let catalog_at = *written.offsets.get(&written.root).ok_or_else(|| unexpected("no catalog"))?;
    let catalog = &pdf[catalog_at..written.xref_at];
    let open = catalog.windows(2).position(|w| w == b"<<").ok_or_else(|| unexpected("catalog"))?;
    let close = catalog.windows(6).position(|w| w == b"endobj").ok_or_else(|| unexpected("catalog"))?;
    let dict = &catalog[open + 2..close];
    let (metadata, profile, info, xref) = (written.size, written.size + 1, written.size + 2, written.size + 3);

    let mut object = |out: &mut Vec<u8>, number: u32, body: &[u8]| {
        offsets.insert(number, out.len());
        out.extend_from_slice(format!("{number} 0 obj\n").as_bytes());
        out.extend_from_slice(body);
        out.extend_from_slice(b"\nendobj\n");
    };
    // PDF/A-2 requires every optional content configuration to have a name;
    // printpdf's (one layer per page, all on) has none.
    let named = replace_once(dict, b"/D<<", b"/D<</Name(govledger report)").unwrap_or_else(|| dict.to_vec());
    let mut new_catalog = format!(
        "<</Metadata {metadata} 0 R/OutputIntents[<</Type/OutputIntent/S/GTS_PDFA1\
         /OutputConditionIdentifier(sRGB IEC61966-2.1)/RegistryName(http://www.color.org)\
         /Info(sRGB IEC61966-2.1)/DestOutputProfile {profile} 0 R>>]"
    )
    .into_bytes();
    new_catalog.extend_from_slice(named.trim_ascii_end());
    object(&mut out, written.root, &new_catalog);
    let packet = xmp(described);
    // The XMP packet is not compressed: PDF/A readers and `strings` find it as is.
    let mut stream = format!("<</Type/Metadata/Subtype/XML/Length {}>>stream\n", packet.len()).into_bytes();
    stream.extend_from_slice(packet.as_bytes());
    stream.extend_from_slice(b"\nendstream");
    object(&mut out, metadata, &stream);
    let icc = compressed_srgb_profile();
    let mut stream =
        format!("<</N 3/Alternate/DeviceRGB/Filter/FlateDecode/Length {}>>stream\n", icc.len()).into_bytes();
    stream.extend_from_slice(icc);
    stream.extend_from_slice(b"\nendstream");
    object(&mut out, profile, &stream);
    object(&mut out, info, info_dictionary(described).as_bytes());

    // The cross-reference stream: entry 0 free, every object, itself.
    offsets.insert(xref, out.len());
    let size = xref + 1;
    let mut rows = Vec::with_capacity(size as usize * 7);
    for number in 0..size {
        match offsets.get(&number) {
            Some(&at) => {
                rows.push(1);
                rows.extend_from_slice(&u32::try_from(at).map_err(|_| unexpected("file size"))?.to_be_bytes());
                rows.extend_from_slice(&[0, 0]);
            }
            None => rows.extend_from_slice(&[0, 0, 0, 0, 0, 0xff, 0xff]),
        }
    }
    let id = described.id;
    let mut stream = format!(
        "<</Type/XRef/Size {size}/W[1 4 2]/Root {} 0 R/Info {info} 0 R/ID[<{id}><{id}>]/Length {}>>stream\n",
        written.root,
        rows.len()
    )
    .into_bytes();
    stream.extend_from_slice(&rows);
    stream.extend_from_slice(b"\nendstream");
    let xref_at = out.len();
    out.extend_from_slice(format!("{xref} 0 obj\n").as_bytes());
    out.extend_from_slice(&stream);
    out.extend_from_slice(format!("\nendobj\nstartxref\n{xref_at}\n%%EOF\n").as_bytes());
    Ok(out)
}

fn replace_once(haystack: &[u8], needle: &[u8], with: &[u8]) -> Option<Vec<u8>> {
    let at = haystack.windows(needle.len()).position(|w| w == needle)?;
    let mut out = haystack[..at].to_vec();
    out.extend_from_slice(with);
    out.extend_from_slice(&haystack[at + needle.len()..]);
    Some(out)
}

/// A text string of the document information dictionary, in hexadecimal:
/// PDFDocEncoding agrees with ASCII, anything else goes as UTF-16BE with a
/// byte-order mark. (poppler 22 also fails to open a file whose information
/// dictionary holds a literal string of more than about 130 bytes, as a
/// dossier of a model with a long name would.)
fn text_string(text: &str) -> String {
    let mut out = String::from("<");
    if text.is_ascii() {
        for b in text.bytes() {
            let _ = write!(out, "{b:02x}");
        }
    } else {
        out.push_str("feff");
        for unit in text.encode_utf16() {
            let _ = write!(out, "{unit:04x}");
        }
    }
    out.push('>');
    out
}

/// The entries PDF/A-2 wants equal to the XMP packet's, and no others.
fn info_dictionary(d: &Described<'_>) -> String {
    let date = d.created.format("D:%Y%m%d%H%M%SZ");
    format!(
        "<</Title{}/Author{}/Subject{}/Creator(govledger)/Producer(govledger)/CreationDate({date})/ModDate({date})>>",
        text_string(d.title),
        text_string(d.author),
        text_string(d.subject)
    )
}

/// The XMP packet: PDF/A identification, Dublin Core title, creator and
/// description, the dates, the producer, and ids derived from the content
/// (so that regenerating a report gives the same bytes).
fn xmp(d: &Described<'_>) -> String {
    let date = d.created.format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let id = d.id;
    let uuid = format!("{}-{}-{}-{}-{}", &id[..8], &id[8..12], &id[12..16], &id[16..20], &id[20..32]);
    let (title, author, subject) =
        (super::escape_markup(d.title), super::escape_markup(d.author), super::escape_markup(d.subject));
    format!(
        "<?xpacket begin=\"\u{feff}\" id=\"W5M0MpCehiHzreSzNTczkc9d\"?>
<x:xmpmeta xmlns:x=\"adobe:ns:meta/\">
 <rdf:RDF xmlns:rdf=\"http://www.w3.org/1999/02/22-rdf-syntax-ns#\">
  <rdf:Description rdf:about=\"\" xmlns:pdfaid=\"http://www.aiim.org/pdfa/ns/id/\">
   <pdfaid:part>2</pdfaid:part>
   <pdfaid:conformance>B</pdfaid:conformance>
  </rdf:Description>
  <rdf:Description rdf:about=\"\" xmlns:dc=\"http://purl.org/dc/elements/1.1/\">
   <dc:format>application/pdf</dc:format>
   <dc:title><rdf:Alt><rdf:li xml:lang=\"x-default\">{title}</rdf:li></rdf:Alt></dc:title>
   <dc:creator><rdf:Seq><rdf:li>{author}</rdf:li></rdf:Seq></dc:creator>
   <dc:description><rdf:Alt><rdf:li xml:lang=\"x-default\">{subject}</rdf:li></rdf:Alt></dc:description>
  </rdf:Description>
  <rdf:Description rdf:about=\"\" xmlns:xmp=\"http://ns.adobe.com/xap/1.0/\">
   <xmp:CreateDate>{date}</xmp:CreateDate>
   <xmp:ModifyDate>{date}</xmp:ModifyDate>
   <xmp:MetadataDate>{date}</xmp:MetadataDate>
   <xmp:CreatorTool>govledger</xmp:CreatorTool>
  </rdf:Description>
  <rdf:Description rdf:about=\"\" xmlns:pdf=\"http://ns.adobe.com/pdf/1.3/\">
   <pdf:Producer>govledger</pdf:Producer>
  </rdf:Description>
  <rdf:Description rdf:about=\"\" xmlns:xmpMM=\"http://ns.adobe.com/xap/1.0/mm/\">
   <xmpMM:DocumentID>uuid:{uuid}</xmpMM:DocumentID>
   <xmpMM:InstanceID>uuid:{uuid}</xmpMM:InstanceID>
  </rdf:Description>
 </rdf:RDF>
</x:xmpmeta>
<?xpacket end=\"r\"?>"
    )
}

/// An ICC v2 display profile of sRGB (IEC 61966-2.1): the primaries adapted
/// to D50 and the sRGB tone curve as a 1024-entry table. Computed rather
/// than shipped so no third-party profile and its licence come with the
/// binary; the output intent of every report.
pub(crate) fn srgb_profile() -> &'static [u8] {
    static PROFILE: OnceLock<Vec<u8>> = OnceLock::new();
    PROFILE.get_or_init(build_srgb_profile)
}

/// The profile deflated once per process, as the output intent embeds it.
fn compressed_srgb_profile() -> &'static [u8] {
    static COMPRESSED: OnceLock<Vec<u8>> = OnceLock::new();
    COMPRESSED.get_or_init(|| {
        let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
        // Writing to a Vec cannot fail.
        let _ = encoder.write_all(srgb_profile());
        encoder.finish().unwrap_or_default()
    })
}

fn s15_16(v: f64) -> [u8; 4] {
    ((v * 65536.0).round() as i32).to_be_bytes()
}

fn xyz_tag(x: f64, y: f64, z: f64) -> Vec<u8> {
    let mut t = b"XYZ \0\0\0\0".to_vec();
    for v in [x, y, z] {
        t.extend_from_slice(&s15_16(v));
    }
    t
}

fn build_srgb_profile() -> Vec<u8> {
    let description = b"sRGB IEC61966-2.1";
    let mut desc = b"desc\0\0\0\0".to_vec();
    desc.extend_from_slice(&(description.len() as u32 + 1).to_be_bytes());
    desc.extend_from_slice(description);
    desc.push(0);
    // No Unicode description (language 0, count 0), no ScriptCode (code 0,
    // count 0, 67 bytes of nothing).
    desc.extend_from_slice(&[0; 8]);
    desc.extend_from_slice(&[0; 3]);
    desc.extend_from_slice(&[0; 67]);
    let mut copyright = b"text\0\0\0\0".to_vec();
    copyright.extend_from_slice(b"No copyright, use freely\0");
    let mut curve = b"curv\0\0\0\0".to_vec();
    const ENTRIES: u32 = 1024;
    curve.extend_from_slice(&ENTRIES.to_be_bytes());
    for i in 0..ENTRIES {
        let v = f64::from(i) / f64::from(ENTRIES - 1);
        let linear = if v <= 0.04045 { v / 12.92 } else { ((v + 0.055) / 1.055).powf(2.4) };
        curve.extend_from_slice(&((linear * 65535.0).round() as u16).to_be_bytes());
    }
    // (signature, data); the three curves share one copy.
    let tags: Vec<(&[u8; 4], Vec<u8>)> = vec![
        (b"desc", desc),
        (b"cprt", copyright),
        (b"wtpt", xyz_tag(0.9642, 1.0, 0.8249)),
        (b"rXYZ", xyz_tag(0.4361, 0.2225, 0.0139)),
        (b"gXYZ", xyz_tag(0.3851, 0.7169, 0.0971)),
        (b"bXYZ", xyz_tag(0.1431, 0.0606, 0.7141)),
        (b"rTRC", curve),
    ];
    let table_len = 4 + 12 * (tags.len() + 2);
    let mut data = Vec::new();
    let mut entries = Vec::new();
    let mut curve_at = (0, 0);
    for (signature, bytes) in &tags {
        while !(128 + table_len + data.len()).is_multiple_of(4) {
            data.push(0);
        }
        let at = (128 + table_len + data.len()) as u32;
        entries.push((**signature, at, bytes.len() as u32));
        if *signature == b"rTRC" {
            curve_at = (at, bytes.len() as u32);
        }
        data.extend_from_slice(bytes);
    }
    entries.push((*b"gTRC", curve_at.0, curve_at.1));
    entries.push((*b"bTRC", curve_at.0, curve_at.1));
    let size = (128 + table_len + data.len()) as u32;
    let mut out = Vec::with_capacity(size as usize);
    out.extend_from_slice(&size.to_be_bytes());
    out.extend_from_slice(&[0; 4]); // preferred CMM
    out.extend_from_slice(&[0x02, 0x10, 0, 0]); // version 2.1
    out.extend_from_slice(b"mntrRGB XYZ ");
    // Creation date: fixed, so that the profile (and every report) is the same each time.
    for part in [2026u16, 1, 1, 0, 0, 0] {
        out.extend_from_slice(&part.to_be_bytes());
    }
    out.extend_from_slice(b"acsp");
    out.extend_from_slice(&[0; 24]); // platform, flags, manufacturer, model, attributes
    out.extend_from_slice(&[0; 4]); // rendering intent: perceptual
    for v in [0.9642, 1.0, 0.8249] {
        out.extend_from_slice(&s15_16(v)); // the PCS illuminant, D50
    }
    out.extend_from_slice(&[0; 4]); // creator
    out.extend_from_slice(&[0; 44]); // profile id (none in v2) and reserved
    debug_assert_eq!(out.len(), 128);
    out.extend_from_slice(&(entries.len() as u32).to_be_bytes());
    for (signature, at, len) in entries {
        out.extend_from_slice(&signature);
        out.extend_from_slice(&at.to_be_bytes());
        out.extend_from_slice(&len.to_be_bytes());
    }
    out.extend_from_slice(&data);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_srgb_profile_is_a_well_formed_icc_profile() {
        let p = srgb_profile();
        let u32_at = |at: usize| u32::from_be_bytes(p[at..at + 4].try_into().unwrap());
        assert_eq!(u32_at(0) as usize, p.len(), "the header states the size");
        assert_eq!(&p[36..40], b"acsp");
        assert_eq!(&p[12..20], b"mntrRGB ");
        let count = u32_at(128) as usize;
        let mut seen = Vec::new();
        for i in 0..count {
            let entry = 132 + 12 * i;
            let (at, len) = (u32_at(entry + 4) as usize, u32_at(entry + 8) as usize);
            assert!(at.is_multiple_of(4) && at + len <= p.len(), "tag {i} lies inside the profile, aligned");
            let signature = &p[entry..entry + 4];
            let kind = &p[at..at + 4];
            let expected: &[u8] = match signature {
                b"desc" => b"desc",
                b"cprt" => b"text",
                b"rTRC" | b"gTRC" | b"bTRC" => b"curv",
                _ => b"XYZ ",
            };
            assert_eq!(kind, expected, "{}", String::from_utf8_lossy(signature));
            seen.push(signature.to_vec());
        }
        for required in [b"desc", b"cprt", b"wtpt", b"rXYZ", b"gXYZ", b"bXYZ", b"rTRC", b"gTRC", b"bTRC"] {
            assert!(seen.contains(&required.to_vec()), "{}", String::from_utf8_lossy(required));
        }
        // The colorants add up to the white point (D50), as a matrix profile's must.
        let xyz = |sig: &[u8; 4]| -> [f64; 3] {
            let entry = (0..count).map(|i| 132 + 12 * i).find(|&e| &p[e..e + 4] == sig).unwrap();
            let at = u32_at(entry + 4) as usize + 8;
            [0, 4, 8].map(|o| f64::from(i32::from_be_bytes(p[at + o..at + o + 4].try_into().unwrap())) / 65536.0)
        };
        let (r, g, b, w) = (xyz(b"rXYZ"), xyz(b"gXYZ"), xyz(b"bXYZ"), xyz(b"wtpt"));
        for i in 0..3 {
            assert!((r[i] + g[i] + b[i] - w[i]).abs() < 0.002, "component {i}");
        }
    }

    #[test]
    fn the_metadata_escapes_what_xml_would_read_as_markup() {
        let d = Described {
            title: "Dossier of model:<a&b>@1 \"quoted\"",
            author: "ledger.example/log",
            subject: "x\u{1}y",
            created: chrono::DateTime::from_timestamp(1_772_528_400, 0).unwrap(),
            id: "0123456789abcdef0123456789abcdef",
        };
        let packet = xmp(&d);
        assert!(packet.contains("model:&lt;a&amp;b&gt;@1 &quot;quoted&quot;"));
        assert!(packet.contains("<dc:description><rdf:Alt><rdf:li xml:lang=\"x-default\">x y</rdf:li>"));
        assert!(packet.contains("uuid:01234567-89ab-cdef-0123-456789abcdef"));
        assert!(packet.contains("<xmp:CreateDate>2026-03-03T09:00:00Z</xmp:CreateDate>"));
        let info = info_dictionary(&d);
        assert!(info.contains("/CreationDate(D:20260303090000Z)"), "{info}");
        assert!(info.contains(&format!("/Author{}", text_string("ledger.example/log"))));
        assert_eq!(text_string("Ωm"), "<feff03a9006d>");
        assert_eq!(text_string("ab"), "<6162>");
    }
}
