//! PDF/A-2b: what turns printpdf's output into a file a records office can
//! keep. printpdf 0.7 knows PDF/X, not PDF/A: its XMP packet carries random
//! instance ids and no `pdfaid` schema, its output intent is a CMYK
//! printing condition while reports are drawn in RGB, and its document
//! information is not kept in step with the XMP. So the finished file is
//! re-read and given, deterministically, an XMP packet and a document
//! information dictionary that say the same thing (title, author, dates from
//! the checkpoint), an sRGB output intent, a named optional-content
//! configuration and a content-derived `/ID`.

use std::sync::OnceLock;

use printpdf::lopdf::{Dictionary, Document, Object, Stream, StringFormat};

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

fn pdf_error(e: impl std::fmt::Display) -> ReportError {
    ReportError::Pdf(e.to_string())
}

/// `pdf` as PDF/A-2b, described by `described`.
pub(crate) fn finish(pdf: &[u8], described: &Described<'_>) -> Result<Vec<u8>, ReportError> {
    let mut doc = Document::load_mem(pdf).map_err(pdf_error)?;
    // PDF/A-2 is based on PDF 1.7 (the file uses a cross-reference stream,
    // 1.5), and wants the header followed by a comment of bytes above 127
    // (so that transfer tools treat the file as binary). lopdf writes the
    // version verbatim after "%PDF-" and has no option for that comment, so
    // it rides on the version: "âãÏÓ" is eight such bytes in UTF-8.
    doc.version = "1.7\n%\u{e2}\u{e3}\u{cf}\u{d3}".into();
    let metadata = doc.add_object(Stream::new(
        Dictionary::from_iter([
            ("Type", Object::Name(b"Metadata".to_vec())),
            ("Subtype", Object::Name(b"XML".to_vec())),
        ]),
        xmp(described).into_bytes(),
    ));
    // The XMP packet stays readable to tools that do not inflate streams.
    if let Ok(Object::Stream(s)) = doc.get_object_mut(metadata) {
        s.allows_compression = false;
    }
    let mut profile = Stream::new(
        Dictionary::from_iter([("N", Object::Integer(3)), ("Alternate", Object::Name(b"DeviceRGB".to_vec()))]),
        srgb_profile().to_vec(),
    );
    profile.compress().map_err(pdf_error)?;
    let profile = doc.add_object(profile);
    let intent = Dictionary::from_iter([
        ("Type", Object::Name(b"OutputIntent".to_vec())),
        ("S", Object::Name(b"GTS_PDFA1".to_vec())),
        ("OutputConditionIdentifier", literal("sRGB IEC61966-2.1")),
        ("RegistryName", literal("http://www.color.org")),
        ("Info", literal("sRGB IEC61966-2.1")),
        ("DestOutputProfile", Object::Reference(profile)),
    ]);
    let root = doc.trailer.get(b"Root").and_then(Object::as_reference).map_err(pdf_error)?;
    let catalog = doc.get_dictionary_mut(root).map_err(pdf_error)?;
    catalog.set("Metadata", Object::Reference(metadata));
    catalog.set("OutputIntents", Object::Array(vec![Object::Dictionary(intent)]));
    name_layer_configuration(catalog);

    let old_info = doc.trailer.get(b"Info").and_then(Object::as_reference).ok();
    let info = doc.add_object(info(described));
    if let Some(old) = old_info {
        doc.objects.remove(&old);
    }
    doc.trailer.set("Info", Object::Reference(info));
    let id = Object::String(described.id.as_bytes().to_vec(), StringFormat::Literal);
    doc.trailer.set("ID", Object::Array(vec![id.clone(), id]));
    // lopdf's cross-reference streams leave out entry 0 and the objects it
    // dropped, which poppler reports as invalid; a classic table lists both.
    doc.reference_table.cross_reference_type = printpdf::lopdf::xref::XrefType::CrossReferenceTable;
    let mut out = Vec::with_capacity(pdf.len() + 4096);
    doc.save_to(&mut out).map_err(pdf_error)?;
    Ok(out)
}

/// PDF/A-2 requires every optional content configuration to have a name;
/// printpdf's (one layer per page, all on) has none.
fn name_layer_configuration(catalog: &mut Dictionary) {
    if let Ok(Object::Dictionary(properties)) = catalog.get_mut(b"OCProperties") {
        if let Ok(Object::Dictionary(default)) = properties.get_mut(b"D") {
            default.set("Name", literal("govledger report"));
        }
    }
}

fn literal(text: &str) -> Object {
    Object::String(text.as_bytes().to_vec(), StringFormat::Literal)
}

/// A text string of the document information dictionary: PDFDocEncoding
/// agrees with ASCII, anything else goes as UTF-16BE with a byte-order mark.
/// Written in hexadecimal: poppler 22 fails to open a file whose
/// information dictionary holds a literal string of more than about 130
/// bytes (a dossier of a model with a long name), and reads hex ones.
fn text_string(text: &str) -> Object {
    if text.is_ascii() {
        return Object::String(text.as_bytes().to_vec(), StringFormat::Hexadecimal);
    }
    let mut bytes = vec![0xfe, 0xff];
    for unit in text.encode_utf16() {
        bytes.extend_from_slice(&unit.to_be_bytes());
    }
    Object::String(bytes, StringFormat::Hexadecimal)
}

/// The entries PDF/A-2 wants equal to the XMP packet's, and no others.
fn info(d: &Described<'_>) -> Dictionary {
    let date = d.created.format("D:%Y%m%d%H%M%SZ").to_string();
    Dictionary::from_iter([
        ("Title", text_string(d.title)),
        ("Author", text_string(d.author)),
        ("Subject", text_string(d.subject)),
        ("Creator", literal("govledger")),
        ("Producer", literal("govledger")),
        ("CreationDate", literal(&date)),
        ("ModDate", literal(&date)),
    ])
}

fn xml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            // XML 1.0 has no control characters but these three.
            c if c.is_control() && !matches!(c, '\t' | '\n' | '\r') => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// The XMP packet: PDF/A identification, Dublin Core title, creator and
/// description, the dates, the producer, and ids derived from the content
/// (so that regenerating a report gives the same bytes).
fn xmp(d: &Described<'_>) -> String {
    let date = d.created.format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let id = d.id;
    let uuid = format!("{}-{}-{}-{}-{}", &id[..8], &id[8..12], &id[12..16], &id[16..20], &id[20..32]);
    let (title, author, subject) = (xml_escape(d.title), xml_escape(d.author), xml_escape(d.subject));
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
        let info = info(&d);
        assert_eq!(info.get(b"CreationDate").unwrap().as_str().unwrap(), b"D:20260303090000Z");
        let Object::String(bytes, StringFormat::Hexadecimal) = text_string("Ωmega") else { panic!("UTF-16 as hex") };
        assert_eq!(bytes, [0xfe, 0xff, 0x03, 0xa9, 0, b'm', 0, b'e', 0, b'g', 0, b'a']);
    }
}
