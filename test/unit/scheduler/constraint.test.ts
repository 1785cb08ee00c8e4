// The constraint language: what parses (and Docker's messages for what does not, naming the
// expression, as `service create --constraint` reports them) and what matches.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConstraintError, nodeMatches, parseConstraint, parseConstraints, validatePlacement, validateSpreadDescriptor } from '../../../manager/scheduler/constraint.js';
import { parseWorld } from './scenario.js';

test('a constraint is KEY==VALUE or KEY!=VALUE, spaces around the parts ignored', () => {
  assert.deepEqual(parseConstraint(' node.role == manager '), { expression: ' node.role == manager ', key: 'node.role', operator: '==', value: 'manager' });
  assert.deepEqual(parseConstraint('node.labels.zone!=eu-west-1'), { expression: 'node.labels.zone!=eu-west-1', key: 'node.labels.zone', operator: '!=', value: 'eu-west-1' });
  assert.equal(parseConstraint('node.labels.name==my value').value, 'my value');
});

test("bad expressions get Docker's reasons, with the expression named", () => {
  const cases: [string, string][] = [
    ['node.labels.zone', 'constraint expected one operator from ==, !='],
    ['node.labels.zone>a', 'constraint expected one operator from ==, !='],
    ['node.labels.zone=a', 'constraint expected one operator from ==, !='],
    ['==web', "key '' is invalid"],
    ['node labels==web', "key 'node labels' is invalid"],
    ['node.labels.a!==b', "key 'node.labels.a!' is invalid"],
    ['node.labels.zone==', "value '' is invalid"],
    ['node.labels.zone==a=b', "value 'a=b' is invalid"],
    ['node.labels.zone==<a>', "value '<a>' is invalid"],
  ];
  for (const [expression, reason] of cases) {
    assert.throws(
      () => parseConstraint(expression),
      (e: unknown) => {
        assert.ok(e instanceof ConstraintError, expression);
        assert.equal(e.expression, expression);
        assert.equal(e.reason, reason);
        assert.equal(e.message, `invalid constraint ${JSON.stringify(expression)}: ${reason}`);
        return true;
      },
    );
  }
});

test('parseConstraints reports the first bad expression of a list', () => {
  assert.throws(() => parseConstraints(['node.role==manager', 'zone', 'x>y']), /invalid constraint "zone"/);
  assert.equal(parseConstraints([]).length, 0);
});

test('matching: label names are case-sensitive, values are not; missing attributes are ""', () => {
  const [n] = parseWorld('node n1 label:Zone=EU hostname=Alpha role=manager engine:disk=ssd').nodes;
  const m = (...exprs: string[]) => nodeMatches(parseConstraints(exprs), n!);
  assert.equal(m('node.labels.Zone==eu'), true);
  assert.equal(m('node.labels.zone==eu'), false);
  assert.equal(m('node.labels.zone!=eu'), true);
  assert.equal(m('node.hostname==alpha', 'node.role==MANAGER', 'node.id==N1'), true);
  assert.equal(m('node.role==worker'), false);
  assert.equal(m('engine.labels.disk==SSD'), true);
  assert.equal(m('engine.labels.gpu!=yes'), true);
  assert.equal(m('node.platform.os==linux', 'node.platform.arch==amd64'), true);
  // A key outside the language matches nothing, whatever the operator.
  assert.equal(m('node.colour!=red'), false);
  assert.equal(m('NODE.LABELS.Zone==eu'), true);
});

test('spread descriptors must name node or engine labels', () => {
  validateSpreadDescriptor('node.labels.zone');
  validateSpreadDescriptor('engine.labels.rack');
  assert.throws(() => validateSpreadDescriptor('node.hostname'), /invalid placement preference spread=node.hostname: spread over node.labels.NAME or engine.labels.NAME/);
  assert.throws(() => validateSpreadDescriptor('node.labels.'), /invalid placement preference/);
});

test('validatePlacement checks constraints and preferences of a service spec', () => {
  const placement = (constraints: string[], prefs: string[] = []) => ({ constraints, preferences: prefs.map((spreadDescriptor) => ({ spreadDescriptor })), maxReplicas: 0, platforms: [] });
  validatePlacement(null);
  validatePlacement(placement(['node.role==manager', 'node.labels.zone!=b'], ['node.labels.zone']));
  assert.throws(() => validatePlacement(placement(['node.role==manager', 'node.role=manager'])), {
    name: 'ConstraintError',
    message: 'invalid constraint "node.role=manager": constraint expected one operator from ==, !=',
  });
  assert.throws(() => validatePlacement(placement([], ['node.role'])), /invalid placement preference spread=node.role/);
});
