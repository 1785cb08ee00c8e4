// Docker's value syntaxes: Go durations, go-units sizes, CPUs as decimals, human durations, shell words.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatBytes, formatCpus, formatDuration, humanDuration, parseBytes, parseDuration, parseNanoCpus, shellWords, ValueError } from '../../../cli/units.js';

test('durations parse as Go does, in milliseconds', () => {
  const cases: [string, number][] = [
    ['0', 0],
    ['10s', 10_000],
    ['1m30s', 90_000],
    ['1h', 3_600_000],
    ['1.5s', 1500],
    ['500ms', 500],
    ['2h45m', 9_900_000],
    ['1500us', 2],
    ['-3s', -3000],
    ['.5m', 30_000],
  ];
  for (const [text, ms] of cases) assert.equal(parseDuration(text), ms, text);
});

test('a duration without a unit, or with an unknown one, is refused with Go\'s message', () => {
  for (const bad of ['10', '', 's', '1d', '1 s', '1s2']) {
    assert.throws(() => parseDuration(bad), (e: unknown) => e instanceof ValueError && e.message === `time: invalid duration ${JSON.stringify(bad)}`, bad);
  }
});

test('durations print as Go prints them', () => {
  const cases: [number, string][] = [
    [0, '0s'],
    [500, '500ms'],
    [5000, '5s'],
    [1500, '1.5s'],
    [90_000, '1m30s'],
    [3_600_000, '1h0m0s'],
    [3_723_500, '1h2m3.5s'],
  ];
  for (const [ms, text] of cases) assert.equal(formatDuration(ms), text, text);
});

test('memory sizes are binary multiples, case-insensitive, with optional b/ib suffixes', () => {
  const cases: [string, number][] = [
    ['512', 512],
    ['512b', 512],
    ['1k', 1024],
    ['512M', 512 * 1024 ** 2],
    ['512MiB', 512 * 1024 ** 2],
    ['1g', 1024 ** 3],
    ['1.5GB', 1.5 * 1024 ** 3],
    ['2 g', 2 * 1024 ** 3],
  ];
  for (const [text, n] of cases) assert.equal(parseBytes(text), n, text);
  for (const bad of ['', 'abc', '1x', '-1m', '1.2.3m', 'm']) assert.throws(() => parseBytes(bad), { message: `invalid size: '${bad}'` }, bad);
});

test('sizes print like go-units BytesSize', () => {
  assert.equal(formatBytes(100), '100B');
  assert.equal(formatBytes(512 * 1024 ** 2), '512MiB');
  assert.equal(formatBytes(1.5 * 1024 ** 3), '1.5GiB');
});

test('CPUs are exact decimals turned into nano CPUs', () => {
  assert.equal(parseNanoCpus('0.5'), 500_000_000);
  assert.equal(parseNanoCpus('2'), 2_000_000_000);
  assert.equal(parseNanoCpus('.25'), 250_000_000);
  assert.equal(parseNanoCpus('1.000000001'), 1_000_000_001);
  assert.throws(() => parseNanoCpus('0.0000000001'), { message: 'value is too precise' });
  assert.throws(() => parseNanoCpus('half'), { message: 'failed to parse half as a rational number' });
  assert.throws(() => parseNanoCpus('-1'), /rational number/);
  assert.equal(formatCpus(1_500_000_000), '1.5');
});

test('human durations are go-units\' words', () => {
  const cases: [number, string][] = [
    [500, 'Less than a second'],
    [1000, '1 second'],
    [45_000, '45 seconds'],
    [60_000, 'About a minute'],
    [150_000, '2 minutes'],
    [3_600_000, 'About an hour'],
    [5 * 3_600_000, '5 hours'],
    [3 * 86_400_000, '3 days'],
    [21 * 86_400_000, '3 weeks'],
    [90 * 86_400_000, '3 months'],
    [800 * 86_400_000, '2 years'],
  ];
  for (const [ms, text] of cases) assert.equal(humanDuration(ms), text, text);
});

test('shell words: quotes group, backslashes escape, unbalanced quotes are refused', () => {
  assert.deepEqual(shellWords(`sh -c 'echo hi; sleep 1'`), ['sh', '-c', 'echo hi; sleep 1']);
  assert.deepEqual(shellWords(`a "b \\"c\\" d" e\\ f ''`), ['a', 'b "c" d', 'e f', '']);
  assert.deepEqual(shellWords('  '), []);
  assert.throws(() => shellWords(`sh -c 'oops`), /closing quote/);
});
