// The rows of a file the page imported, by line number: a row error then shows the value it is
// about (while the file is at hand, i.e. in the page that uploaded it).

// line number (1-based, where the row starts) → { column: value } for CSV, the parsed object for
// JSON Lines (rows that do not parse are left out).
export function rowsOf(format, text) {
  const rows = new Map();
  const body = text.replace(/^\uFEFF/, '');
  if (format === 'jsonl') {
    body.split('\n').forEach((line, index) => {
      if (!line.trim()) return;
      try {
        const value = JSON.parse(line);
        if (value && typeof value === 'object' && !Array.isArray(value)) rows.set(index + 1, value);
      } catch {
        // Reported by the service as that line's error.
      }
    });
    return rows;
  }
  const records = parseCsv(body);
  const header = records.shift();
  if (!header) return rows;
  for (const { line, fields } of records) {
    rows.set(line, Object.fromEntries(header.fields.map((name, index) => [name.trim(), fields[index] ?? ''])));
  }
  return rows;
}

// RFC 4180: quoted fields may hold commas, quotes ("") and line breaks. Each record keeps the line
// it starts on.
function parseCsv(text) {
  const records = [];
  let fields = [];
  let field = '';
  let quoted = false;
  let line = 1;
  let start = 1;
  for (let i = 0; i < text.length; i += 1) {
    const char = text[i];
    if (quoted) {
      if (char === '"' && text[i + 1] === '"') {
        field += '"';
        i += 1;
      } else if (char === '"') {
        quoted = false;
      } else {
        if (char === '\n') line += 1;
        field += char;
      }
    } else if (char === '"') {
      quoted = true;
    } else if (char === ',') {
      fields.push(field);
      field = '';
    } else if (char === '\n' || char === '\r') {
      if (char === '\r' && text[i + 1] === '\n') i += 1;
      fields.push(field);
      if (fields.length > 1 || fields[0] !== '') records.push({ line: start, fields });
      fields = [];
      field = '';
      line += 1;
      start = line;
    } else {
      field += char;
    }
  }
  if (field !== '' || fields.length) {
    fields.push(field);
    records.push({ line: start, fields });
  }
  return records;
}
