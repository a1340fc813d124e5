import { describe, expect, it } from 'vitest';
import { JsonNumber, JsonObject, parseJson, stringifyPretty, toPlain } from '../../src/formats/json/json-text.js';
import { KspError } from '../../src/errors.js';

describe('lossless JSON', () => {
  it('keeps u64 values above 2^53 exactly', () => {
    const text = '{\n  "a": 18446744073709551615,\n  "b": 9007199254740993\n}';
    const v = parseJson(text, 't.json');
    expect(toPlain(v)).toEqual({ a: 18446744073709551615n, b: 9007199254740993n });
    expect(stringifyPretty(v)).toBe(text);
  });

  it('keeps member order, integer-like names included', () => {
    const text = '{\n  "z": 1,\n  "10": 2,\n  "2": 3\n}';
    const v = parseJson(text, 't.json') as JsonObject;
    expect(v.members.map(([k]) => k)).toEqual(['z', '10', '2']);
    expect(stringifyPretty(v)).toBe(text);
  });

  it('writes serde_json pretty layout: empty containers, nesting, escapes', () => {
    const v = parseJson('{"a":[],"b":{},"c":[1,{"d":"x\\ny\\u0001é"}],"e":null,"f":true,"g":-1.5e3}', 't');
    expect(stringifyPretty(v)).toBe('{\n  "a": [],\n  "b": {},\n  "c": [\n    1,\n    {\n      "d": "x\\ny\\u0001é"\n    }\n  ],\n  "e": null,\n  "f": true,\n  "g": -1.5e3\n}');
  });

  it('inserts new members before named ones, replaces in place', () => {
    const o = new JsonObject([['a', 1 as never], ['c', 3 as never]]);
    expect(o.with('b', JsonNumber.of(2), ['c']).members.map(([k]) => k)).toEqual(['a', 'b', 'c']);
    expect(o.with('a', 'x').members[0]).toEqual(['a', 'x']);
  });

  it.each([
    ['{"a":1', 'JSON_SYNTAX', /line 1, column 7/],
    ['{"a":1}x', 'JSON_SYNTAX', /after the JSON value/],
    ['{"a":1,"a":2}', 'JSON_SYNTAX', /duplicate member "a"/],
    ['{"a":01}', 'JSON_SYNTAX', /expected "," or "}"/],
    ['{"a":"\u0001"}', 'JSON_SYNTAX', /control character/],
    ['[' .repeat(200), 'JSON_SYNTAX', /nesting deeper/],
    ['', 'JSON_SYNTAX', /end of input/],
  ])('rejects %j with a located error', (text, code, msg) => {
    const e = (() => { try { parseJson(text, 'bad.json'); } catch (x) { return x; } })() as KspError;
    expect(e).toBeInstanceOf(KspError);
    expect(e.code).toBe(code);
    expect(e.message).toMatch(msg);
    expect(e.message).toMatch(/^bad\.json: /);
  });

  it('rejects invalid UTF-8 bytes', () => {
    expect(() => parseJson(Buffer.from([0x7b, 0x22, 0xff, 0x22, 0x3a, 0x31, 0x7d]), 'u.json')).toThrow(/not valid UTF-8/);
  });
});
