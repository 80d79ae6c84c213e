"""The sharded-step study's reading of compiled HLO."""

from benchmarks.studies import sharded_step


def test_collectives_counts_the_elements_of_every_result_and_only_collectives():
  hlo = """
  %ag = f32[8,1024]{1,0} all-gather(f32[1,1024]{1,0} %p), dimensions={0}
  %ar = (s32[2]{0}, u32[2]{0}) all-reduce(s32[2]{0} %a, u32[2]{0} %b), to_apply=%sum
  %ars = s32[4]{0} all-reduce-start(s32[4]{0} %c), to_apply=%sum
  %ard = s32[4]{0} all-reduce-done(s32[4]{0} %ars)
  %cp = f32[] collective-permute(f32[] %d), source_target_pairs={{0,1}}
  %add = f32[8,1024]{1,0} add(f32[8,1024]{1,0} %ag, f32[8,1024]{1,0} %ag)
  """
  assert sharded_step.collectives(hlo) == [("all-gather", 8192), ("all-reduce", 4),
                                           ("all-reduce", 4), ("collective-permute", 1)]
