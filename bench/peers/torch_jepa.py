"""Peer: one multimodal JEPA pretraining step in PyTorch (CPU), the reference a user would pick instead.
Tokens: imaging T_img x d_img (nodule ROI features), clinical T_clin x d_clin (signature chunks).
Context encoder (pre-LN transformer) -> predictor -> smooth-L1 to layer-normed EMA-target features.
usage: python torch_jepa.py small|paper STEPS  -> prints steps/s and samples/s"""
import sys, time, copy
import torch, torch.nn as nn, torch.nn.functional as F

CFG = {
    # default CPU-scale model of the reproduction
    "small": dict(t_img=5, d_img=16, t_clin=4, d_clin=16, dim=32, depth=2, heads=4, mlp=64, pdim=24, pdepth=1, batch=128),
    # shapes of the lab's real data: 5 nodules x 128 features, 2000 clinical signatures in 8 chunks
    "paper": dict(t_img=5, d_img=128, t_clin=8, d_clin=250, dim=256, depth=4, heads=8, mlp=512, pdim=128, pdepth=2, batch=256),
}

class Block(nn.Module):
    def __init__(s, d, h, m):
        super().__init__(); s.n1 = nn.LayerNorm(d); s.att = nn.MultiheadAttention(d, h, batch_first=True, bias=False)
        s.n2 = nn.LayerNorm(d); s.ff = nn.Sequential(nn.Linear(d, m), nn.GELU(), nn.Linear(m, d))
    def forward(s, x):
        y = s.n1(x); x = x + s.att(y, y, y, need_weights=False)[0]
        return x + s.ff(s.n2(x))

class Encoder(nn.Module):
    def __init__(s, c):
        super().__init__(); s.c = c
        s.img = nn.Linear(c["d_img"], c["dim"]); s.clin = nn.Linear(c["d_clin"], c["dim"])
        s.pos = nn.Parameter(torch.randn(c["t_img"] + c["t_clin"], c["dim"]) * 0.02)
        s.blocks = nn.ModuleList(Block(c["dim"], c["heads"], c["mlp"]) for _ in range(c["depth"]))
        s.norm = nn.LayerNorm(c["dim"])
    def tokens(s, xi, xc):
        return torch.cat([s.img(xi), s.clin(xc)], 1) + s.pos
    def forward(s, xi, xc, keep=None):
        x = s.tokens(xi, xc)
        if keep is not None: x = x[:, keep]
        for b in s.blocks: x = b(x)
        return s.norm(x)

class Predictor(nn.Module):
    def __init__(s, c):
        super().__init__(); n = c["t_img"] + c["t_clin"]
        s.inp = nn.Linear(c["dim"], c["pdim"]); s.mask = nn.Parameter(torch.zeros(c["pdim"]))
        s.pos = nn.Parameter(torch.randn(n, c["pdim"]) * 0.02)
        s.blocks = nn.ModuleList(Block(c["pdim"], max(1, c["pdim"] // 8), 2 * c["pdim"]) for _ in range(c["pdepth"]))
        s.norm = nn.LayerNorm(c["pdim"]); s.out = nn.Linear(c["pdim"], c["dim"])
    def forward(s, z, keep, tgt):
        B = z.shape[0]
        x = torch.cat([s.inp(z) + s.pos[keep], (s.mask + s.pos[tgt]).expand(B, -1, -1)], 1)
        for b in s.blocks: x = b(x)
        return s.out(s.norm(x[:, len(keep):]))

def main():
    c = CFG[sys.argv[1] if len(sys.argv) > 1 else "small"]; steps = int(sys.argv[2]) if len(sys.argv) > 2 else 200
    torch.manual_seed(0)
    enc, pred = Encoder(c), Predictor(c); tgt_enc = copy.deepcopy(enc).requires_grad_(False)
    opt = torch.optim.AdamW(list(enc.parameters()) + list(pred.parameters()), lr=1e-3, weight_decay=0.04)
    B = c["batch"]; xi = torch.randn(B, c["t_img"], c["d_img"]); xc = torch.randn(B, c["t_clin"], c["d_clin"])
    img = list(range(c["t_img"])); clin = list(range(c["t_img"], c["t_img"] + c["t_clin"]))
    def step(i):
        keep, tgt = (img, clin) if i % 2 == 0 else (clin, img)   # cross-modal: predict one modality from the other
        with torch.no_grad():
            h = tgt_enc(xi, xc); h = F.layer_norm(h, (h.shape[-1],))[:, tgt]
        loss = F.smooth_l1_loss(pred(enc(xi, xc, keep), keep, tgt), h)
        opt.zero_grad(); loss.backward(); opt.step()
        with torch.no_grad():
            for pt, pq in zip(tgt_enc.parameters(), enc.parameters()): pt.mul_(0.996).add_(pq.detach(), alpha=0.004)
        return loss.item()
    for i in range(10): step(i)
    t0 = time.perf_counter()
    for i in range(steps): step(i)
    dt = time.perf_counter() - t0
    print(f"config={sys.argv[1] if len(sys.argv)>1 else 'small'} threads={torch.get_num_threads()} steps/s={steps/dt:.1f} samples/s={steps*B/dt:.0f}")

if __name__ == "__main__":
    main()
