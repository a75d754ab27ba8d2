"""Direct coupling analysis: protein and RNA families as dense Potts models.

Alignments in (`alignment`), Boltzmann-machine DCA training (`bmdca`), and
what users do with the model (`scores`: contacts, energies, mutational
scans; `adabmdca`: adabmDCA's parameter files).
"""
