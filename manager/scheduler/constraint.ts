// Placement constraints, Docker's language: `KEY==VALUE` or `KEY!=VALUE`, where KEY is one of
// node.id, node.hostname, node.role, node.platform.os, node.platform.arch, node.labels.NAME or
// engine.labels.NAME. Values compare case-insensitively; label names are case-sensitive. The
// parser accepts and rejects exactly what swarmkit's does, with the same messages, and adds the
// expression that was bad, so `service create --constraint` can be checked when it is given.
import type { Node, Placement } from '../../proto/gen/objects.js';

export type Operator = '==' | '!=';

export interface Constraint {
  /** The expression as written, for messages. */
  readonly expression: string;
  readonly key: string;
  readonly operator: Operator;
  readonly value: string;
}

/** A constraint expression that cannot be parsed; `message` is Docker's wording plus the expression. */
export class ConstraintError extends Error {
  override name = 'ConstraintError';
  constructor(
    readonly expression: string,
    readonly reason: string,
  ) {
    super(`invalid constraint ${JSON.stringify(expression)}: ${reason}`);
  }
}

export const NODE_LABEL_PREFIX = 'node.labels.';
export const ENGINE_LABEL_PREFIX = 'engine.labels.';

// swarmkit's patterns: a key is a dotted identifier; a value may not contain operator characters
// (<, >, ~, =, !) so that future operators stay unambiguous.
const KEY_PATTERN = /^[a-z_][a-z0-9\-_.]+$/i;
const VALUE_PATTERN = /^[a-z0-9:\-_\s.*()?+[\]\\^$|/]+$/i;
const OPERATORS: readonly Operator[] = ['==', '!='];

export function parseConstraint(expression: string): Constraint {
  // The first operator of the list that occurs wins, as in swarmkit: "a!==b" splits on "==".
  const operator = OPERATORS.find((op) => expression.includes(op));
  if (!operator) throw new ConstraintError(expression, `constraint expected one operator from ${OPERATORS.join(', ')}`);
  const at = expression.indexOf(operator);
  const key = expression.slice(0, at).trim();
  const value = expression.slice(at + operator.length).trim();
  if (!KEY_PATTERN.test(key)) throw new ConstraintError(expression, `key '${key}' is invalid`);
  if (!VALUE_PATTERN.test(value)) throw new ConstraintError(expression, `value '${value}' is invalid`);
  return { expression, key, operator, value };
}

/** Parses every expression; throws a ConstraintError naming the first bad one. */
export function parseConstraints(expressions: readonly string[]): Constraint[] {
  return expressions.map(parseConstraint);
}

function hasPrefix(key: string, prefix: string): boolean {
  return key.length > prefix.length && key.slice(0, prefix.length).toLowerCase() === prefix;
}

/**
 * The value a node has for a constraint key, "" when the node lacks it (so `==` fails and `!=`
 * holds, as in Docker), or undefined for a key the language does not know (which never matches).
 */
export function nodeAttribute(node: Node, key: string): string | undefined {
  switch (key.toLowerCase()) {
    case 'node.id':
      return node.id;
    case 'node.hostname':
      return node.description?.hostname ?? '';
    case 'node.role':
      return node.role.toLowerCase();
    case 'node.platform.os':
      return node.description?.platform?.os ?? '';
    case 'node.platform.arch':
      return node.description?.platform?.architecture ?? '';
  }
  if (hasPrefix(key, NODE_LABEL_PREFIX)) return node.spec?.annotations?.labels?.[key.slice(NODE_LABEL_PREFIX.length)] ?? '';
  if (hasPrefix(key, ENGINE_LABEL_PREFIX)) return node.description?.engineLabels?.[key.slice(ENGINE_LABEL_PREFIX.length)] ?? '';
  return undefined;
}

/** Whether the node satisfies every constraint. */
export function nodeMatches(constraints: readonly Constraint[], node: Node): boolean {
  return compileConstraints(constraints)(node);
}

/** How to read a key's value from a node, worked out once rather than for every node. */
function attributeReader(key: string): (node: Node) => string | undefined {
  switch (key.toLowerCase()) {
    case 'node.id':
    case 'node.hostname':
    case 'node.role':
    case 'node.platform.os':
    case 'node.platform.arch':
      return (node) => nodeAttribute(node, key);
  }
  if (hasPrefix(key, NODE_LABEL_PREFIX)) {
    const label = key.slice(NODE_LABEL_PREFIX.length);
    return (node) => node.spec?.annotations?.labels?.[label] ?? '';
  }
  if (hasPrefix(key, ENGINE_LABEL_PREFIX)) {
    const label = key.slice(ENGINE_LABEL_PREFIX.length);
    return (node) => node.description?.engineLabels?.[label] ?? '';
  }
  return () => undefined;
}

/** nodeMatches for the same constraints and many nodes: the scheduler's filter. */
export function compileConstraints(constraints: readonly Constraint[]): (node: Node) => boolean {
  const checks = constraints.map((c) => ({ read: attributeReader(c.key), value: c.value.toLowerCase(), equal: c.operator === '==' }));
  return (node) => {
    for (const c of checks) {
      const actual = c.read(node);
      if (actual === undefined) return false; // a key outside the language matches nothing
      // Values compare case-insensitively (Go's strings.EqualFold in swarmkit).
      if ((actual === c.value || actual.toLowerCase() === c.value) !== c.equal) return false;
    }
    return true;
  };
}

/**
 * Checks a placement preference descriptor (`--placement-pref spread=node.labels.zone` gives
 * "node.labels.zone"): Docker spreads over node or engine labels only.
 */
export function validateSpreadDescriptor(descriptor: string): void {
  if (!hasPrefix(descriptor, NODE_LABEL_PREFIX) && !hasPrefix(descriptor, ENGINE_LABEL_PREFIX)) {
    throw new Error(`invalid placement preference spread=${descriptor}: spread over node.labels.NAME or engine.labels.NAME`);
  }
}

/**
 * Reads the value nodes have for a spread descriptor (nodes without the label share the value
 * ""), or undefined for a descriptor Docker does not spread over.
 */
export function spreadReader(descriptor: string): ((node: Node) => string) | undefined {
  if (!hasPrefix(descriptor, NODE_LABEL_PREFIX) && !hasPrefix(descriptor, ENGINE_LABEL_PREFIX)) return undefined;
  return attributeReader(descriptor) as (node: Node) => string;
}

/**
 * Checks a service's placement when it is created or updated, so mistakes are reported then
 * rather than as tasks that never start: constraints parse, preferences spread over labels.
 * Throws an Error (a ConstraintError for constraints) whose message names the bad value.
 */
export function validatePlacement(placement: Placement | null | undefined): void {
  if (!placement) return;
  parseConstraints(placement.constraints);
  for (const p of placement.preferences) validateSpreadDescriptor(p.spreadDescriptor);
}
