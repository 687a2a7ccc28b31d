import { runKeys } from '../../../functions/core/layout';
import { getJson, getJsonIfExists } from '../../../functions/core/s3';
import { findLatestCheckpoint } from '../../../functions/train/checkpoint';
import type { TrainHistory } from '../../../functions/train/train';
import { DATA_BUCKET, localS3Fixture, type S3Fixture } from '../../support/local-s3';
import { startMain } from './child';
import { DIGIT_CLASSES, mnistSplits, writePrepared } from './prepared-fixture';

const EPOCHS = 6;

describe('main.ts killed mid-run', () => {
  let fx: S3Fixture;
  beforeAll(async () => {
    fx = await localS3Fixture();
  });
  afterAll(async () => fx.close());

  test('the rerun resumes from the newest checkpoint and finishes with exactly the configured epochs', async () => {
    // Given a run whose epochs take long enough to kill one in the middle
    await writePrepared(fx.s3, DATA_BUCKET, {
      runId: 'spot',
      task: 'classification',
      inputShape: [784],
      classNames: DIGIT_CLASSES,
      splits: mnistSplits({ train: 2000, validation: 200, test: 0 }),
      manifest: { name: 'mnist', task: 'classification', format: 'csv', label: 'label', training: { epochs: EPOCHS, batchSize: 32, seed: 5 } },
    });
    const env = { RUN_ID: 'spot', DATA_BUCKET, DLOPS_S3_ENDPOINT: fx.server.endpoint };

    // When the first job is SIGKILLed (a Spot reclaim) as soon as its first checkpoint is committed
    const first = startMain(env);
    const deadline = Date.now() + 60_000;
    while ((await findLatestCheckpoint(fx.s3, DATA_BUCKET, 'spot')) === undefined) {
      if (Date.now() > deadline || first.child.exitCode !== null) throw new Error(`no checkpoint appeared; events: ${JSON.stringify(first.events)}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    first.child.kill('SIGKILL');
    const killed = await first.done;
    const atKill = (await findLatestCheckpoint(fx.s3, DATA_BUCKET, 'spot'))!.manifest;

    // Then the first job died before finishing
    expect(killed.signal).toBe('SIGKILL');
    expect(atKill.epoch).toBeGreaterThanOrEqual(1);
    expect(atKill.epoch).toBeLessThan(EPOCHS);
    expect(await getJsonIfExists(fx.s3, { bucket: DATA_BUCKET, key: runKeys.history('spot') })).toBeUndefined();

    // When the job is run again
    const second = await startMain(env).done;

    // Then it logs where it resumed, trains only the epochs that were missing, and records exactly EPOCHS epochs
    expect(second.code).toBe(0);
    expect(second.events.filter((e) => e.event === 'resume').map((e) => e.fromEpoch)).toEqual([atKill.epoch]);
    const trained = second.events.filter((e) => e.event === 'epoch').map((e) => e.epoch);
    expect(trained).toEqual(Array.from({ length: EPOCHS - atKill.epoch }, (_, i) => atKill.epoch + 1 + i));
    const { value: history } = await getJson<TrainHistory>(fx.s3, { bucket: DATA_BUCKET, key: runKeys.history('spot') });
    expect(history.epochs.map((e) => e.epoch)).toEqual(Array.from({ length: EPOCHS }, (_, i) => i + 1));
    expect(history.resumedFrom).toBe(atKill.epoch);
    // the epochs done before the kill are kept as the first job logged them, not redone
    const before = first.events.filter((e) => e.event === 'epoch' && (e.epoch as number) <= atKill.epoch).map((e) => e.loss);
    expect(history.epochs.slice(0, atKill.epoch).map((e) => e.loss)).toEqual(before);
  }, 120_000);
});
