import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { definitionParts, synthesizeTemplate } from '../../local/definition';
import { LocalRuntime } from '../../local/runtime';
import type { CfnTemplate } from '../../local/template';

/**
 * The definition the local runtime runs is the synthesized one: byte for byte the template's
 * DefinitionString except where the template has a token (a resource reference), plus only the
 * adjustments the runner declares (interpreter defaults written out).
 */
describe('the locally run state machine definition', () => {
  let template: CfnTemplate;
  let runtime: LocalRuntime;
  let state: string;

  beforeAll(async () => {
    template = synthesizeTemplate();
    state = mkdtempSync(join(tmpdir(), 'dlops-def-'));
    runtime = await LocalRuntime.start({ stateDirectory: state, template, serveApi: false });
  }, 120_000);

  afterAll(async () => {
    await runtime?.stop();
    rmSync(state, { recursive: true, force: true });
  });

  it('equals the synthesized DefinitionString except for resolved references', () => {
    const parts = definitionParts(template);
    const tokens = parts.filter((p) => typeof p !== 'string');
    expect(tokens.length).toBeGreaterThan(0);

    // Undo the declared adjustments, then the text must match the template with each token as a wildcard.
    const running = JSON.parse(JSON.stringify(runtime.stateMachine.definition)) as { States: Record<string, Record<string, unknown>> };
    for (const adjustment of runtime.stateMachine.adjustments) delete running.States[adjustment.state][adjustment.field];
    const text = JSON.stringify(running);
    const pattern = parts.map((p) => (typeof p === 'string' ? p.replace(/[.*+?^${}()|[\]\\]/g, '\\$&') : '([^"]*)')).join('');
    const match = new RegExp(`^${pattern}$`).exec(text);
    expect(match).not.toBeNull();

    // Each token became a local placeholder: an ARN or name, never an unresolved token.
    const values = match!.slice(1);
    expect(values).toHaveLength(tokens.length);
    for (const value of values) {
      expect(value).toMatch(/^(arn:aws:[a-z0-9-]+:[a-z0-9-]*:\d*:.+|aws|us-east-1|000000000000)$/);
      expect(value).not.toContain('Token');
    }
  });

  it('declares only Task timeouts as adjustments, and only where the template sets none', () => {
    for (const adjustment of runtime.stateMachine.adjustments) {
      expect(adjustment.field).toBe('TimeoutSeconds');
      expect(definitionParts(template).filter((p): p is string => typeof p === 'string').join('')).not.toMatch(
        new RegExp(`"${adjustment.state}":\\{[^{}]*"TimeoutSeconds"`),
      );
    }
  });

  it('has the agreed states, and every task bound to a local stand-in', () => {
    const states = runtime.stateMachine.definition.States;
    expect(Object.keys(states).sort()).toEqual(['Evaluate', 'Export', 'Failed', 'Gate', 'Preprocess', 'Published', 'Register', 'RecordFailure', 'Rejected', 'Train'].sort());
    expect((states.Train as { Resource: string }).Resource).toBe('arn:aws:states:::batch:submitJob.sync');
    const jobDefinition = (states.Train as unknown as { Parameters: { JobDefinition: string } }).Parameters.JobDefinition;
    expect(runtime.pipeline.jobDefinition(jobDefinition).environment).toMatchObject({ DATA_BUCKET: 'dlops-data' });
  });

  it('serves the API resources the template declares', () => {
    expect(runtime.pipeline.apiResources).toEqual(expect.arrayContaining(['/v2/health/live', '/v2/models/{name}/infer']));
  });
});
