"""The imagetext task: captions, multi-positive targets, HAC's terms on a toy case, Retrain's
data, profiles and planning, and end-to-end cells on tiny CIFAR-format files (CPU)."""

from __future__ import annotations

import dataclasses
import math
import pytest
import torch
import torch.nn.functional as F

from bench import profiles
from bench.cell import CellSpec, execute_cell
from bench.data.catalog import CIFAR10_CLASSES
from bench.grid import plan
from bench.method import resolve_methods
from bench.tasks.imagetext import ImageTextParams, lorentz
from bench.tasks.imagetext import cell as itcell
from bench.tasks.imagetext.captions import (GENERIC, HELDOUT_TEMPLATES, TRAIN_TEMPLATES, UNK, build_bank, words)
from bench.tasks.imagetext.models import contrastive_loss, multi_positive_targets
from imagetext_data import PER_BATCH, write_cifar10, small_loader
from methods.hac import hac_terms

DOG = CIFAR10_CLASSES.index("dog")
TINY_PARAMS = {"image_width": 4, "text_width": 16, "text_layers": 1, "text_heads": 2, "embed_dim": 8}
TINY_TRAIN = {"epochs": 2, "lr": 2e-3, "momentum": 0.9, "weight_decay": 0.1, "batch_size": 32,
              "milestones": [0.5, 0.75], "gamma": 0.1}
SMALL = {"epochs": 1, "batch_size": 32}


# --------------------------------------------------------------------------- captions


def test_heldout_templates_are_new_sentences_made_of_seen_words():
    bank = build_bank(CIFAR10_CLASSES)
    unk = bank.vocab.index(UNK)
    assert not (bank.heldout_tokens == unk).any() and not (bank.train_tokens == unk).any()
    train_sentences = {t.format(c) for t in TRAIN_TEMPLATES for c in CIFAR10_CLASSES}
    assert not {t.format(c) for t in HELDOUT_TEMPLATES for c in CIFAR10_CLASSES} & train_sentences
    assert set(bank.vocab) >= {w for t in HELDOUT_TEMPLATES for w in words(t.format("dog"))}


def test_caption_ids_name_identical_captions_and_generic_ones_follow_the_hierarchy():
    bank = build_bank(CIFAR10_CLASSES)
    labels = torch.arange(10).repeat(300)
    tokens, ids = bank.sample(labels, torch.Generator().manual_seed(0), generic_fraction=0.2)
    same_ids = ids[:, None] == ids[None, :]
    same_tokens = (tokens[:, None, :] == tokens[None, :, :]).all(-1)
    assert torch.equal(same_ids, same_tokens)
    generic = ids >= 10 * len(TRAIN_TEMPLATES)
    texts = list(GENERIC)
    for label, gid in zip(labels[generic].tolist(), (ids[generic] - 10 * len(TRAIN_TEMPLATES)).tolist()):
        assert CIFAR10_CLASSES[label] in GENERIC[texts[gid]]
    assert (bank.generic_count > 0).all()  # every CIFAR-10 class has a generic caption: ...
    assert abs(generic.float().mean().item() - 0.2) < 0.03  # ... so 20% of 3,000 draws (4 standard deviations)
    _, every = bank.sample(labels, torch.Generator().manual_seed(0), generic_fraction=1.0)
    assert (every >= 10 * len(TRAIN_TEMPLATES)).all()
    _, none = bank.sample(labels, torch.Generator().manual_seed(0), generic_fraction=0.0)
    assert (none < 10 * len(TRAIN_TEMPLATES)).all()


# --------------------------------------------------------------------------- contrastive targets


def test_duplicate_captions_are_positives_not_negatives():
    ids = torch.tensor([3, 7, 3, 5])
    expected = torch.tensor([[0.5, 0, 0.5, 0], [0, 1, 0, 0], [0.5, 0, 0.5, 0], [0, 0, 0, 1.0]])
    torch.testing.assert_close(multi_positive_targets(ids), expected)
    logits = torch.randn(4, 4, generator=torch.Generator().manual_seed(0))
    by_hand = 0.5 * (-(expected * logits.log_softmax(1)).sum(1).mean() - (expected * logits.T.log_softmax(1)).sum(1).mean())
    torch.testing.assert_close(contrastive_loss(logits, ids), by_hand)
    # with distinct ids it is CLIP's loss
    distinct = torch.arange(4)
    clip = 0.5 * (F.cross_entropy(logits, distinct) + F.cross_entropy(logits.T, distinct))
    torch.testing.assert_close(contrastive_loss(logits, distinct), clip)


# --------------------------------------------------------------------------- evaluation


@pytest.mark.parametrize("geometry", ["clip", "meru"])
def test_zero_shot_predictions_are_float32_even_where_training_uses_bf16_autocast(geometry):
    from bench.data.catalog import Augment
    from bench.data.device_data import DeviceData
    from bench.engine import Engine
    from bench.tasks.imagetext.evaluate import image_embeddings, predictions

    bank = build_bank(CIFAR10_CLASSES)
    params = ImageTextParams(**TINY_PARAMS)
    model = itcell.new_model(geometry, params, bank, seed=0)
    g = torch.Generator().manual_seed(0)
    data = DeviceData(torch.randint(0, 256, (40, 3, 32, 32), dtype=torch.uint8, generator=g), torch.arange(40) % 10,
                      torch.arange(40), "test")
    fp32, bf16 = (Engine("cpu", (0.5,) * 3, (0.25,) * 3, Augment(0, False), amp=amp) for amp in (False, True))
    assert torch.equal(image_embeddings(fp32, model, data), image_embeddings(bf16, model, data))
    expected, got = predictions(fp32, model, data, bank), predictions(bf16, model, data, bank)
    assert all(torch.equal(expected[k], got[k]) for k in ("seen", "heldout"))
    with torch.no_grad(), bf16.autocast():  # what image_embeddings would have computed in before
        assert model.image_tower(fp32.to_input(data.images, None, augment=False)).dtype == torch.bfloat16


def test_the_scalars_stay_in_their_bounds_and_can_leave_a_bound_again():
    """MERU's bounds on the parameters themselves: after steps that push every scalar up, each sits
    on its bound (not past it, where the clamped forward would pass no gradient), and the next
    gradient that points back moves it back."""
    from bench.tasks.imagetext.models import CURVATURE_RANGE, MAX_SCALE
    from bench.tasks.imagetext.train import adamw

    model = itcell.new_model("meru", ImageTextParams(**TINY_PARAMS), build_bank(CIFAR10_CLASSES), seed=0)
    scalars = [model.log_scale, model.log_curvature, model.image_alpha, model.text_alpha]
    opt = adamw(model, lr=1.0, weight_decay=0.0)
    for _ in range(20):
        opt.zero_grad()
        (-(model.scale() + model.curvature() + model.image_alpha + model.text_alpha)).backward()
        opt.step()
    bounds = [math.log(MAX_SCALE), math.log(CURVATURE_RANGE[1]), 0.0, 0.0]
    assert [p.item() for p in scalars] == pytest.approx(bounds, abs=1e-6)
    for _ in range(30):  # Adam's momentum still points up at first
        opt.zero_grad()
        (model.scale() + model.curvature() + model.image_alpha + model.text_alpha).backward()
        assert all(p.grad.item() > 0 for p in scalars)  # the gradient is not cut at the bound
        opt.step()
    assert all(p.item() < b - 1.0 for p, b in zip(scalars, bounds))


class _StepStub:
    """The part of ImageTextContext that contrastive_step and concepts_of use, over a real bank and model."""

    def __init__(self, model=None):
        self.bank = build_bank(CIFAR10_CLASSES)
        self.generator = torch.Generator().manual_seed(0)
        self.forget = torch.arange(64)
        self.model = model
        self.seen_ids = None

    def captions(self, labels, generic=True):
        return self.bank.sample(labels, self.generator, 0.2 if generic else 0.0)

    def sample(self, data, n):
        return dataclasses.make_dataclass("B", ["x", "y"])(torch.zeros(n, 1), torch.full((n,), DOG))

    def other_retained(self, labels):
        retained = torch.tensor([k for k in range(10) if k != DOG])
        return retained[torch.randint(0, 9, labels.shape, generator=self.generator)]

    def encode_image(self, x):
        return x

    def encode_text(self, tokens):
        return tokens

    def concept_embeddings(self):
        return self.model.encode_prompts(self.bank.train_tokens[[DOG]])

    def concept_of(self, labels):
        return torch.zeros_like(labels)


def test_relabelled_forget_images_get_templates_of_their_new_class_unless_generic_captions_are_asked_for():
    from methods import _imagetext as it

    stub = _StepStub()
    stub.model = type("M", (), {"loss": lambda self, images, texts, ids: ids})()
    template_ids = 10 * len(TRAIN_TEMPLATES)
    retain = dataclasses.make_dataclass("B", ["x", "y"], namespace={"__len__": lambda self: len(self.y)})(
        torch.zeros(2000, 1), torch.arange(2000) % 10)
    templates = it.contrastive_step(stub, retain, 2000, "templates").loss
    assert (templates[2000:] < template_ids).all()  # no generic caption ("a photo of a pet." fits a dog)
    any_caption = it.contrastive_step(stub, retain, 2000, "any").loss
    assert abs((any_caption[2000:] >= template_ids).float().mean().item() - 0.2) < 0.03
    for ids in (templates, any_caption):  # retain pairs: generic captions at the task's fraction either way
        assert abs((ids[:2000] >= template_ids).float().mean().item() - 0.2) < 0.03


@pytest.mark.parametrize("concept_text, text_learns", [("trained", True), ("fixed", False)])
def test_the_concept_prompts_pass_gradient_to_the_text_tower_only_when_trained(concept_text, text_learns):
    from methods import _imagetext as it

    model = itcell.new_model("meru", ImageTextParams(**TINY_PARAMS), build_bank(CIFAR10_CLASSES), seed=0)
    concept = it.concepts_of(_StepStub(model), torch.tensor([DOG, DOG]), concept_text)
    assert concept.shape == (2, TINY_PARAMS["embed_dim"])
    if text_learns:
        concept.sum().backward()
        assert model.text_tower.tokens.weight.grad.abs().sum() > 0
    else:
        assert not concept.requires_grad


# --------------------------------------------------------------------------- HAC's terms


@dataclasses.dataclass(frozen=True)
class Opts:
    dist_margin: float = 5.0
    dist_form: str = "hinge"
    ent_margin: float = 0.0
    norm_of: str = "space"


def _move(term: str, x0: torch.Tensor, concept: torch.Tensor, x_orig: torch.Tensor, steps: int = 20) -> torch.Tensor:
    x = x0.clone().requires_grad_(True)
    opt = torch.optim.SGD([x], lr=0.05)
    for _ in range(steps):
        opt.zero_grad()
        hac_terms(x, concept, x_orig, torch.tensor(1.0), Opts())[term].backward()
        opt.step()
    return x.detach()


def test_each_hac_term_moves_forget_embeddings_the_intended_way():
    c = 1.0
    concept = torch.tensor([[0.3, 0.0, 0.0]])  # a generic-ish text near the origin: a wide cone
    x0 = torch.tensor([[1.2, 0.1, 0.0], [1.0, -0.1, 0.1]])  # images inside the cone, close to the text
    assert torch.all(lorentz.exterior_angle(concept.expand(2, 3), x0, c) < lorentz.half_aperture(concept, c))
    # distance hinge: further from the concept's text
    x = _move("dist", x0, concept.expand(2, 3), x0)
    assert torch.all(lorentz.dist(x, concept.expand(2, 3), c) > lorentz.dist(x0, concept.expand(2, 3), c) + 0.05)
    # entailment: the exterior angle grows (out of the cone)
    x = _move("entail", x0, concept.expand(2, 3), x0)
    assert torch.all(lorentz.exterior_angle(concept.expand(2, 3), x, c) > lorentz.exterior_angle(concept.expand(2, 3), x0, c) + 0.05)
    # norm: back toward the Original's norm (here 1.5x the current one), direction kept
    x_orig = 1.5 * x0
    x = _move("norm", x0, concept.expand(2, 3), x_orig, steps=200)
    torch.testing.assert_close(x.norm(dim=1), x_orig.norm(dim=1), rtol=1e-3, atol=1e-3)
    torch.testing.assert_close(F.normalize(x, dim=1), F.normalize(x0, dim=1))


def test_hac_terms_values_on_a_constructed_case():
    concept = torch.tensor([[0.3, 0.0]])
    x = torch.tensor([[0.3, 0.0]]) * 2  # on the concept's ray, beyond it: inside the cone
    terms = hac_terms(x, concept, x, torch.tensor(1.0), Opts(dist_margin=5.0))
    d = lorentz.dist(x, concept, 1.0)
    torch.testing.assert_close(terms["dist"], (5.0 - d).mean())
    assert terms["entail"].item() == pytest.approx(lorentz.half_aperture(concept, 1.0).item(), abs=2e-3)
    assert terms["norm"].item() == 0.0
    negative = hac_terms(x, concept, x, torch.tensor(1.0), Opts(dist_form="negative"))
    torch.testing.assert_close(negative["dist"], -d.mean())


# --------------------------------------------------------------------------- cells


@pytest.fixture(scope="module")
def cifar_root(tmp_path_factory):
    return write_cifar10(tmp_path_factory.mktemp("cifar"))


@pytest.fixture
def small_cifar(monkeypatch):
    monkeypatch.setattr(itcell, "load_dataset", small_loader())


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory):
    """One checkpoint cache for the cell tests, so each tiny Original and Retrain trains once."""
    return tmp_path_factory.mktemp("cache")


def spec(method: str, model: str, root, cache, params=None, **task) -> CellSpec:
    return CellSpec(profile="t", method=method, params=params or {}, dataset="cifar10", model=model, scenario="class5",
                    seed=0, train=TINY_TRAIN, eval={"batch_size": 1024, "classwise_test": "remaining"}, device="cpu",
                    forget_class=5, task="imagetext", task_params={**dataclasses.asdict(ImageTextParams()), **TINY_PARAMS, **task},
                    data_root=str(root), cache_dir=str(cache), download=False)


def test_forgotten_concepts_follow_the_scenario_then_more_concepts():
    params = ImageTextParams(concepts=4, more_concepts="cat,dog,automobile,bird")
    assert itcell.forgotten_classes(DOG, params, CIFAR10_CLASSES) == (DOG, 3, 1, 2)
    assert itcell.forgotten_classes(DOG, ImageTextParams(), CIFAR10_CLASSES) == (DOG,)


def test_retrain_never_sees_the_concept(cifar_root, tmp_path, small_cifar, monkeypatch):
    """Every image and caption Retrain trains on: no dog image, no token 'dog' (Original sees both)."""
    from bench.tasks.imagetext.captions import CaptionBank

    seen: dict[str, list] = {"labels": [], "tokens": []}
    original_sample = CaptionBank.sample

    def spy(self, labels, generator, generic_fraction):
        tokens, ids = original_sample(self, labels, generator, generic_fraction)
        seen["labels"].append(labels.clone())
        seen["tokens"].append(tokens.clone())
        return tokens, ids

    monkeypatch.setattr(CaptionBank, "sample", spy)
    monkeypatch.setattr(itcell, "_memory", {})  # train here, not from this process's memory
    cell = itcell.prepare(spec("Retrain", "clip", cifar_root, tmp_path))
    dog_token = cell.bank.vocab.index("dog")
    original_labels, original_tokens = torch.cat(seen["labels"]), torch.cat(seen["tokens"])
    assert (original_labels == DOG).any() and (original_tokens == dog_token).any()
    seen["labels"].clear(), seen["tokens"].clear()
    cell.ctx.retrain()
    labels, tokens = torch.cat(seen["labels"]), torch.cat(seen["tokens"])
    n_retain = 5 * PER_BATCH - 5 * PER_BATCH // 10
    assert len(labels) == TINY_TRAIN["epochs"] * (n_retain // 32) * 32  # full batches of D_r
    assert not (labels == DOG).any() and not (tokens == dog_token).any()
    assert not (cell.retain.labels == DOG).any() and (cell.forget.labels == DOG).all() and len(cell.forget) == 20


def test_plan_runs_both_geometries_and_hac_only_on_meru(tmp_path):
    profile = profiles.load("imagetext-gpu")
    cells, notes = plan(profile, resolve_methods(list(profile.methods)), data_root=tmp_path, cache_dir=tmp_path)
    assert [c.model for c in cells] == ["clip"] * 4 + ["meru"] * 5
    assert [c.method for c in cells[:2]] == [c.method for c in cells[4:6]] == ["Retrain", "Original"]
    assert {c.method for c in cells[2:4]} == {"AC-IT", "FT-IT"} and {c.method for c in cells[6:]} == {"AC-IT", "FT-IT", "HAC"}
    assert notes == ["HAC runs only on model meru; skipped on clip"]
    assert {p: profiles.load(p).task_params["concepts"] for p in ("imagetext-gpu", "imagetext-gpu-2", "imagetext-gpu-4")} \
        == {"imagetext-gpu": 1, "imagetext-gpu-2": 2, "imagetext-gpu-4": 4}
    assert profiles.load("imagetext-cpu").device == "cpu"


def test_end_to_end_cells_on_the_cpu(cifar_root, shared_cache, small_cifar):
    tmp_path = shared_cache
    records = {}
    for model in ("clip", "meru"):
        for method, params in (("Retrain", {}), ("Original", {}), ("FT-IT", SMALL),
                               ("AC-IT", {**SMALL, "forget_batch_size": 8}), ("HAC", {**SMALL, "forget_batch_size": 8})):
            if method == "HAC" and model == "clip":
                continue
            record = execute_cell(spec(method, model, cifar_root, tmp_path, params))
            assert record["status"] == "ok", record.get("traceback")
            records[model, method] = record
    for model in ("clip", "meru"):
        retrain, original = records[model, "Retrain"], records[model, "Original"]
        assert retrain["metrics"]["avg_gap"] == 0.0 and retrain["metrics"]["forget_row_tv"] == 0.0
        assert retrain["cost"]["samples"] == {  # Retrain's own training: 2 epochs x 5 full batches of D_r's 180
            "image": {"forward": 320, "backward": 320, "second_order": 0, "evaluation": 0},
            "text": {"forward": 320, "backward": 320, "second_order": 0, "evaluation": 0}}
        assert original["cost"]["pflops"] == 0.0 and original["cost"]["samples"]["image"]["forward"] == 0
        conf = original["confusion"]
        assert len(conf["seen"]) == 10 and all(abs(sum(row) - 100) < 1e-6 for row in conf["seen"])
        assert conf["forgotten"] == [DOG] and conf["retrain_seen"] == retrain["confusion"]["seen"]
    # HAC: 6 steps over D_r (180 = 5 x 32 + 20) with 8 relabelled forget images each; the Original
    # embeds the same 8 (forward only); the concept prompt (12 templates) is encoded each step.
    hac = records["meru", "HAC"]["cost"]["samples"]
    assert hac["image"] == {"forward": 180 + 6 * 8 + 6 * 8, "backward": 180 + 6 * 8, "second_order": 0, "evaluation": 0}
    assert hac["text"] == {"forward": 180 + 6 * 8 + 6 * 12, "backward": 180 + 6 * 8 + 6 * 12, "second_order": 0, "evaluation": 0}
    f = records["meru", "HAC"]["cost"]["forward_macs_per_sample"]
    expected = (2 * f["image"] * 276 + 4 * f["image"] * 228 + 2 * f["text"] * 300 + 4 * f["text"] * 300) / 1e15
    assert records["meru", "HAC"]["cost"]["pflops"] == pytest.approx(expected)
    assert records["meru", "HAC"]["method_info"]["curvature"] == records["meru", "Original"]["method_info"]["curvature"]
    assert records["clip", "FT-IT"]["gap_metrics"] == ["zs_forget_seen", "zs_forget_heldout", "zs_retain_seen",
                                                      "zs_retain_heldout"]
    from bench.tasks.imagetext.report import render_csv, render_markdown

    lines = render_csv(records.values()).splitlines()
    assert [tuple(line.split(",")[2:4]) for line in lines[1:]] == [
        ("clip", "Retrain"), ("clip", "Original"), ("clip", "FT-IT"), ("clip", "AC-IT"),
        ("meru", "Retrain"), ("meru", "Original"), ("meru", "FT-IT"), ("meru", "AC-IT"), ("meru", "HAC")]
    hac_row = next(line for line in render_markdown(records.values()).splitlines() if line.startswith("| meru | HAC |"))
    assert f"| {records['meru', 'HAC']['metrics']['avg_gap']:.2f} |" in hac_row


def test_a_random_scenario_is_a_one_line_config_error(cifar_root, tmp_path, small_cifar):
    record = execute_cell(dataclasses.replace(spec("Original", "clip", cifar_root, tmp_path), scenario="random10"))
    assert record["status"] == "failed" and "use a class scenario" in record["error"]


def test_concepts_two_forgets_dog_and_automobile(cifar_root, shared_cache, small_cifar):
    tmp_path = shared_cache
    cell = itcell.prepare(spec("Original", "meru", cifar_root, tmp_path, concepts=2))
    assert cell.forgotten == (DOG, 1) and set(cell.forget.labels.tolist()) == {DOG, 1} and len(cell.forget) == 40
    assert cell.ctx.model.hyperbolic and 0.1 <= float(cell.ctx.model.curvature().detach()) <= 10.0


def test_figures_are_written_and_identical_when_drawn_again(cifar_root, shared_cache, small_cifar, tmp_path):
    from bench.tasks.imagetext.figures import draw

    hac = spec("HAC", "meru", cifar_root, shared_cache, {**SMALL, "forget_batch_size": 8})
    first = draw(hac, tmp_path / "a", max_points=40, tsne_iterations=250)
    assert [p.name for p in first] == [f"{v}_meru_HAC_class5_s0.png" for v in ("confusion", "tsne", "poincare", "radial")]
    second = draw(hac, tmp_path / "b", views=("confusion", "tsne"), max_points=40, tsne_iterations=250)
    assert [p.read_bytes() for p in second] == [p.read_bytes() for p in first[:2]]
    clip = draw(spec("AC-IT", "clip", cifar_root, shared_cache, {**SMALL, "forget_batch_size": 8}), tmp_path / "c",
                max_points=40, tsne_iterations=250)
    assert [p.name for p in clip] == ["confusion_clip_AC-IT_class5_s0.png", "tsne_clip_AC-IT_class5_s0.png"]


def test_poincare_points_keep_each_points_radius_in_the_unit_disk():
    from bench.tasks.imagetext.figures import poincare_points

    x = torch.randn(50, 6, generator=torch.Generator().manual_seed(0)).numpy() * 3
    for c in (0.5, 2.0):
        pts = poincare_points(x, c)
        radius = (x * x).sum(1) ** 0.5
        expected = (c ** 0.5) * radius / (1 + (1 + c * radius**2) ** 0.5)  # sqrt(c) ||x|| / (1 + sqrt(c) x_time)
        assert pts.shape == (50, 2) and abs(((pts**2).sum(1) ** 0.5) - expected).max() < 1e-6 and expected.max() < 1


def test_figures_command_refuses_a_profile_of_another_task(capsys):
    from bench.cli import main

    assert main(["imagetext-figures", "--profile", "quick"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: profile quick is a classify profile; imagetext-figures needs an imagetext one"]
