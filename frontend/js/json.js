// JSON that keeps numbers exactly as the API wrote them.
//
// The API returns numbers in `data` digit for digit (12345678901234567890 stays so). JSON.parse
// would round such numbers to the nearest double, and saving an item after editing only its name
// would then silently change its data. parseJson keeps every number whose text a double cannot
// reproduce as a LosslessNumber, and stringifyJson writes it back unchanged.

export class LosslessNumber {
  constructor(raw) {
    this.raw = raw;
  }

  valueOf() {
    return Number(this.raw);
  }

  toString() {
    return this.raw;
  }
}

const STRING = /"(?:[^"\\\u0000-\u001f]|\\["\\/bfnrt]|\\u[0-9a-fA-F]{4})*"/y;
const NUMBER = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
const WHITESPACE = /[ \t\n\r]*/y;

export function parseJson(text) {
  let position = 0;

  const fail = (message) => {
    throw new SyntaxError(`${message} at position ${position}`);
  };
  const skipWhitespace = () => {
    WHITESPACE.lastIndex = position;
    WHITESPACE.exec(text);
    position = WHITESPACE.lastIndex;
  };
  const token = (pattern, what) => {
    pattern.lastIndex = position;
    const match = pattern.exec(text);
    if (!match) fail(`expected ${what}`);
    position = pattern.lastIndex;
    return match[0];
  };
  const literal = (word, value) => {
    if (text.startsWith(word, position)) {
      position += word.length;
      return value;
    }
    return fail('unexpected token');
  };

  const parseValue = (depth) => {
    if (depth > 512) fail('nesting too deep');
    skipWhitespace();
    const char = text[position];
    if (char === '{') return parseObject(depth);
    if (char === '[') return parseArray(depth);
    if (char === '"') return JSON.parse(token(STRING, 'a string'));
    if (char === 't') return literal('true', true);
    if (char === 'f') return literal('false', false);
    if (char === 'n') return literal('null', null);
    const raw = token(NUMBER, 'a value');
    const number = Number(raw);
    return String(number) === raw ? number : new LosslessNumber(raw);
  };

  const parseObject = (depth) => {
    position += 1;
    const object = {};
    skipWhitespace();
    if (text[position] === '}') {
      position += 1;
      return object;
    }
    for (;;) {
      skipWhitespace();
      const key = JSON.parse(token(STRING, 'a string key'));
      skipWhitespace();
      if (text[position] !== ':') fail("expected ':'");
      position += 1;
      // defineProperty: a key such as "__proto__" is data, not the object's prototype.
      Object.defineProperty(object, key, {
        value: parseValue(depth + 1), enumerable: true, writable: true, configurable: true,
      });
      skipWhitespace();
      const next = text[position];
      position += 1;
      if (next === '}') return object;
      if (next !== ',') fail("expected ',' or '}'");
    }
  };

  const parseArray = (depth) => {
    position += 1;
    const array = [];
    skipWhitespace();
    if (text[position] === ']') {
      position += 1;
      return array;
    }
    for (;;) {
      array.push(parseValue(depth + 1));
      skipWhitespace();
      const next = text[position];
      position += 1;
      if (next === ']') return array;
      if (next !== ',') fail("expected ',' or ']'");
    }
  };

  const value = parseValue(0);
  skipWhitespace();
  if (position !== text.length) fail('unexpected text after the JSON value');
  return value;
}

export function stringifyJson(value, indent = 0) {
  return write(value, ' '.repeat(indent), '');
}

function write(value, unit, current) {
  if (value instanceof LosslessNumber) return value.raw;
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  const inner = current + unit;
  const newline = unit ? '\n' : '';
  if (Array.isArray(value)) {
    if (value.length === 0) return '[]';
    const parts = value.map((entry) => inner + write(entry === undefined ? null : entry, unit, inner));
    return `[${newline}${parts.join(`,${newline}`)}${newline}${current}]`;
  }
  const entries = Object.entries(value).filter(([, entry]) => entry !== undefined);
  if (entries.length === 0) return '{}';
  const colon = unit ? ': ' : ':';
  const parts = entries.map(([key, entry]) => inner + JSON.stringify(key) + colon + write(entry, unit, inner));
  return `{${newline}${parts.join(`,${newline}`)}${newline}${current}}`;
}
