"""Peer: one supervised finetuning step of the multimodal classifier in PyTorch (CPU), the reference a
user would pick instead. Same model as orchestrate's classifier and as torch_jepa.py's encoder:
tokens (imaging T_img x d_img, clinical T_clin x d_clin) -> shared linear tokenizer per modality +
position embeddings -> pre-LN transformer -> LayerNorm -> mean pool over tokens -> LayerNorm ->
Linear -> GELU -> Linear -> one logit; BCE with logits, AdamW (lr 1e-3, weight decay 0.04).
usage: python torch_finetune.py small|paper STEPS  -> prints steps/s and samples/s"""
import os, sys, time
import torch, torch.nn as nn, torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_jepa import CFG, Encoder  # noqa: E402  (the same encoder as the pretraining peer)


class Classifier(nn.Module):
    def __init__(s, c):
        super().__init__(); d = c["dim"]
        s.enc = Encoder(c); s.norm = nn.LayerNorm(d); s.fc1 = nn.Linear(d, d); s.fc2 = nn.Linear(d, 1)
    def forward(s, xi, xc):
        pooled = s.enc(xi, xc).mean(1)
        return s.fc2(F.gelu(s.fc1(s.norm(pooled)))).squeeze(1)


def main():
    name = sys.argv[1] if len(sys.argv) > 1 else "small"; c = CFG[name]
    steps = int(sys.argv[2]) if len(sys.argv) > 2 else 200
    torch.manual_seed(0)
    model = Classifier(c)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.04)
    B = c["batch"]; xi = torch.randn(B, c["t_img"], c["d_img"]); xc = torch.randn(B, c["t_clin"], c["d_clin"])
    y = (torch.rand(B) < 0.5).float()
    def step():
        loss = F.binary_cross_entropy_with_logits(model(xi, xc), y)
        opt.zero_grad(); loss.backward(); opt.step()
        return loss.item()
    for _ in range(10): step()
    t0 = time.perf_counter()
    for _ in range(steps): step()
    dt = time.perf_counter() - t0
    print(f"step=finetune config={name} threads={torch.get_num_threads()} steps/s={steps/dt:.1f} samples/s={steps*B/dt:.0f}")


if __name__ == "__main__":
    main()
